"""A private charon for one-shot probes, in whatever network namespace we run in.

    >>> with PrivateCharon() as charon:          # doctest: +SKIP
    ...     with ViciSession(charon.vici) as s: ...

It runs under :mod:`aovpn_lab.service` like the lab's own charons (entry ``charon`` of
profiles/daemons.yml: a private /run, since its pid file path is compiled in; ready when
its vici socket exists); its config, log and vici socket live in a temporary folder that
is removed afterwards. It is stopped by its recorded PID, never by name.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

from ..errors import PreflightError, TargetError
from ..service import Daemon, render, spec
from ..service.templates import template_path
from . import profiles

CHARON = spec("charon").binary  # profiles/daemons.yml names it once


# The lab's charons and the private one of `probe ikev2` get their strongswan.conf from the
# same template (the strongswan role's), so a setting cannot differ between them.
TEMPLATE = template_path(spec("charon").templates["strongswan.conf"])


def config_text(workdir: Path, settings: dict, *, name: str = "aovpn-lab probe ikev2") -> str:
    """strongswan.conf for a client charon whose socket, log and state live in `workdir`."""
    return render(TEMPLATE, ansible_managed="written by aovpn-lab", inventory_hostname=name,
                  charon_settings=settings, strongswan_gateway=False, strongswan_dir=str(workdir),
                  strongswan_vici=str(workdir / "charon.vici"))


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
    def __init__(self, startup_timeout: float = 5.0, netns: str | None = None, retransmit_tries: int | None = None):
        self.startup_timeout = startup_timeout
        self.netns = netns  # None: the namespace this process runs in
        # None: profiles/charon.yml's. Fewer: a dead peer is declared sooner (DPD retransmits too).
        self.retransmit_tries = retransmit_tries
        self.workdir: Path | None = None
        self.daemon: Daemon | None = None

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
        settings = profiles.charon_settings()
        if self.retransmit_tries is not None:
            settings = {**settings, "retransmit": {**settings["retransmit"], "tries": self.retransmit_tries}}
        (self.workdir / "strongswan.conf").write_text(config_text(self.workdir, settings))
        self.daemon = Daemon("charon", self.workdir, self.netns, error=TargetError)
        try:
            self.daemon.start(self.startup_timeout)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.daemon is not None:
            self.daemon.stop(grace=3.0)
            self.daemon = None
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
