"""A private charon for one-shot probes, in whatever network namespace we run in.

    >>> with PrivateCharon() as charon:          # doctest: +SKIP
    ...     with ViciSession(charon.vici) as s: ...

charon's pid file path is compiled in (/run/charon.pid), so it gets a private mount
namespace with its own /run; its config, log and vici socket live in a temporary folder
that is removed afterwards. It is stopped by its PID, never by name.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .. import paths
from ..errors import PreflightError, TargetError
from . import profiles

CHARON = "/usr/lib/ipsec/charon"


# The lab's charons and the private one of `probe ikev2` get their strongswan.conf from the
# same template (the strongswan role's), so a setting cannot differ between them.
TEMPLATE = paths.PLAYBOOKS / "roles" / "strongswan" / "templates" / "strongswan.conf.j2"


def config_text(workdir: Path, settings: dict, *, name: str = "aovpn-lab probe ikev2") -> str:
    """strongswan.conf for a client charon whose socket, log and state live in `workdir`."""
    import jinja2
    # trim_blocks as Ansible's template module renders it
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    return env.from_string(TEMPLATE.read_text()).render(
        ansible_managed="written by aovpn-lab", inventory_hostname=name, charon_settings=settings,
        strongswan_gateway=False, strongswan_dir=str(workdir), strongswan_vici=str(workdir / "charon.vici"))


def ports_free(ports: tuple[int, ...] = (500, 4500)) -> list[int]:
    """The IKE ports already bound in this namespace (another IKE daemon would steal our packets)."""
    busy = []
    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            busy.append(port)
        finally:
            s.close()
    return busy


class PrivateCharon:
    def __init__(self, startup_timeout: float = 5.0, netns: str | None = None):
        self.startup_timeout = startup_timeout
        self.netns = netns  # None: the namespace this process runs in
        self.workdir: Path | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def vici(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "charon.vici"

    @property
    def log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "charon.log"

    def __enter__(self) -> "PrivateCharon":
        if os.geteuid() != 0:
            raise PreflightError("an IKEv2 probe needs root (charon binds UDP 500/4500 and a TUN device)",
                                 hint="run as root")
        if not os.path.exists(CHARON):
            raise PreflightError(f"{CHARON} is missing", hint="apt-get install strongswan-charon "
                                 "libcharon-extra-plugins libstrongswan-standard-plugins")
        if self.netns:
            from .craft_netns import run_in_netns
            busy = run_in_netns(self.netns, ports_free)
        else:
            busy = ports_free()
        if busy:
            raise PreflightError(f"UDP port(s) {', '.join(map(str, busy))} already in use in this network "
                                 "namespace (another IKE daemon?)",
                                 hint="stop it, or run the probe in another namespace (`ip netns exec NS ...`)")
        self.workdir = Path(tempfile.mkdtemp(prefix="aovpn-charon-"))
        (self.workdir / "strongswan.conf").write_text(config_text(self.workdir, profiles.charon_settings()))
        env = {**os.environ, "STRONGSWAN_CONF": str(self.workdir / "strongswan.conf")}
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", f"mount -t tmpfs none /run && exec {CHARON}"]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv
        self.proc = subprocess.Popen(
            argv,
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.startup_timeout
        while not self.vici.is_socket():
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read() or b"").decode(errors="replace").strip() if self.proc.stderr else ""
                self.__exit__(None, None, None)
                raise TargetError(f"charon exited at start-up: {err.splitlines()[-1] if err else 'no output'}")
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise TargetError(f"charon did not open its vici socket within {self.startup_timeout:.0f}s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
