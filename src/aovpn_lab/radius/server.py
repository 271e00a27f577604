"""A FreeRADIUS instance in a network namespace: config, start, stop, all by PID.

Debian's FreeRADIUS service is never used (the machine's policy-rc.d keeps it stopped).
Each instance has its own state folder (layout: `aovpn_lab.radius.config.InstancePaths`)
and runs under :mod:`aovpn_lab.service` (entry ``freeradius`` of profiles/daemons.yml:
ready when its log says "Ready to process requests") in the foreground of its own
session::

    ip netns exec NS /usr/sbin/freeradius -f -d STATE/raddb

``-f`` keeps it in the foreground (no fork, so the PID we record is the server's),
``-d`` points it at the rendered raddb tree, whose radiusd.conf sets logdir, run_dir,
pidfile and the log file inside the state folder. ``-X`` is never used (it would
print requests in full to the console).

    >>> rad = FreeRadius(Path("/tmp/rad"), netns="hxr-a")      # doctest: +SKIP
    >>> rad.write_config(cfg); rad.check_config(); pid = rad.start()  # doctest: +SKIP
    >>> rad.stop()                                              # doctest: +SKIP

From Ansible (one JSON object on stdout; ``{"failed": true, "msg": ...}`` and exit 1 on
errors; the shared secret comes from a 0600 file or an environment variable, never argv)::

    python -m aovpn_lab.radius.server secret --out DIR/radius.secret
    python -m aovpn_lab.radius.server up --netns NS --state DIR --listen ADDR \\
        --ca CA.pem --cert SERVER.fullchain.pem --key SERVER.key.pem \\
        --client gw1=203.0.113.10 --secret-file DIR/radius.secret
    python -m aovpn_lab.radius.server gateway-conf --server rad=ADDR \\
        --secret-file DIR/radius.secret --out GATEWAY/eap-radius.conf
    python -m aovpn_lab.radius.server check --netns GW_NS --server ADDR --kind eap --secret-file ...
    python -m aovpn_lab.radius.server status|down --state DIR
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import AovpnError, PreflightError, TargetError
from ..service import Daemon, spec
from .. import tool
from ..tool import error_line
from .config import (
    InstancePaths,
    RadiusClient,
    RadiusConfig,
    Secret,
    fingerprint,
    render,
    strongswan_eap_radius,
)

FREERADIUS = "/usr/sbin/freeradius"
SECRET_ENV = "AOVPN_RADIUS_SECRET"


class FreeRadius:
    """One FreeRADIUS process, identified by the PID recorded in its state folder."""

    def __init__(self, state: str | Path, netns: str | None = None, binary: str = FREERADIUS):
        self.paths = InstancePaths(Path(state).absolute())
        self.netns = netns
        self.binary = binary
        entry = spec("freeradius")
        if binary != entry.binary:
            entry = dataclasses.replace(entry, binary=binary)
        self.daemon = Daemon(entry, self.paths.state, netns, error=TargetError)

    # -- configuration ------------------------------------------------------------
    def render(self, cfg: RadiusConfig) -> dict[str, str]:
        return render(cfg, self.paths.state)

    def write_config(self, cfg: RadiusConfig) -> str:
        """Write the raddb tree (0600 files in 0700 folders); return its fingerprint."""
        files = self.render(cfg)
        for d in (self.paths.state, self.paths.raddb, self.paths.log_dir, self.paths.run_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        for name, text in files.items():
            _write_private(self.paths.raddb / name, text)
        inputs = [*cfg.ca_files, cfg.cert_file, cfg.key_file]
        if len(cfg.ca_files) > 1:
            _write_private(self.paths.ca_bundle, "".join(_pem_text(p) for p in cfg.ca_files), mode=0o644)
        else:
            self.paths.ca_bundle.unlink(missing_ok=True)
        _write_private(self.paths.state / "config.json", json.dumps(cfg.describe(), indent=2) + "\n")
        return fingerprint(files, inputs)

    def check_config(self) -> None:
        """`freeradius -C`: parse the tree and load the modules (certificates included)."""
        if not os.path.exists(self.binary):
            raise PreflightError(f"{self.binary} is missing",
                                 hint="apt-get install -y --no-install-recommends freeradius")
        res = tool.run([self.binary, "-C", "-d", str(self.paths.raddb), "-l", "stdout"],
                       step="check the FreeRADIUS configuration", timeout=30)
        if not res.ok:
            errors = [l.split(" : ", 1)[-1] for l in (res.stdout + res.stderr).splitlines() if "Error" in l]
            raise TargetError(f"FreeRADIUS rejects its configuration in {self.paths.raddb}: "
                              + ("; ".join(errors[-3:]) or error_line(res.stdout, res.stderr, res.returncode)),
                              hint="check the certificate/key paths and the listen address")

    def running_fingerprint(self) -> str | None:
        return self.daemon.recorded().get("digest") if self.running else None

    # -- process ------------------------------------------------------------------
    def argv(self) -> list[str]:
        return self.daemon.argv()

    def pid(self) -> int | None:
        """The PID of this instance if it runs (checked against /proc, not trusted blindly)."""
        main = self.daemon.main()
        return main.pid if main is not None else None

    @property
    def running(self) -> bool:
        return self.daemon.running

    def start(self, timeout: float = 10.0, fp: str | None = None) -> int:
        """Start in the foreground of a new session; return its PID once it serves requests."""
        if (pid := self.pid()) is not None:
            raise TargetError(f"FreeRADIUS of {self.paths.state} already runs as PID {pid}", hint="stop it first")
        if os.geteuid() != 0:
            raise PreflightError("FreeRADIUS in a network namespace needs root", hint="run as root")
        if not os.path.exists(self.binary):
            raise PreflightError(f"{self.binary} is missing",
                                 hint="apt-get install -y --no-install-recommends freeradius")
        if self.netns and not os.path.exists(f"/run/netns/{self.netns}"):
            raise TargetError(f"network namespace {self.netns} does not exist", hint="bring the lab topology up")
        if not (self.paths.raddb / "radiusd.conf").exists():
            raise TargetError(f"no configuration in {self.paths.raddb}", hint="write_config() first")
        self.daemon.start(timeout)
        self.daemon.note(digest=fp)
        pid = self.pid()
        assert pid is not None
        return pid

    def stop(self, timeout: float = 5.0) -> bool:
        """SIGTERM (then SIGKILL) the recorded PID; True if it was running."""
        was = self.running
        self.daemon.stop(grace=timeout)
        return was

    # -- logs -----------------------------------------------------------------------
    def log_text(self, offset: int = 0) -> str:
        try:
            with open(self.paths.log, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_size(self) -> int:
        return self.paths.log.stat().st_size if self.paths.log.exists() else 0

    def status(self) -> dict[str, Any]:
        try:
            described = json.loads((self.paths.state / "config.json").read_text())
        except (OSError, ValueError):
            described = None
        return {"state": str(self.paths.state), "netns": self.netns, "pid": self.pid(), "running": self.running,
                "log": str(self.paths.log), "config": described}


def up(cfg: RadiusConfig, state: str | Path, netns: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """Idempotent: keep an instance that runs this very configuration, (re)start otherwise."""
    rad = FreeRadius(state, netns)
    fp = rad.write_config(cfg)
    pid = rad.pid()
    if pid is not None and rad.running_fingerprint() == fp:
        return {"changed": False, "pid": pid, "restarted": False, **_where(rad, cfg)}
    rad.check_config()
    if pid is not None:
        rad.stop()
    new = rad.start(timeout=timeout, fp=fp)
    return {"changed": True, "pid": new, "restarted": pid is not None, **_where(rad, cfg)}


def down(state: str | Path, purge: bool = False) -> dict[str, Any]:
    rad = FreeRadius(state)
    was = rad.stop()
    if purge and rad.paths.state.exists():
        shutil.rmtree(rad.paths.state)
    return {"changed": was or purge, "stopped": was, "state": str(rad.paths.state)}


def _where(rad: FreeRadius, cfg: RadiusConfig) -> dict[str, Any]:
    return {"listen": f"{cfg.listen}:{cfg.port}", "netns": rad.netns, "state": str(rad.paths.state),
            "log": str(rad.paths.log), "clients": [f"{c.name}={c.address}" for c in cfg.clients]}


# -- secrets ---------------------------------------------------------------------------
def read_secret(secret_file: str | None = None, secret_env: str | None = SECRET_ENV) -> Secret:
    """From a file only its owner can read (mode 0600 or stricter), else from the environment."""
    if secret_file:
        try:
            st = os.stat(secret_file)
        except OSError as exc:
            raise AovpnError(f"cannot read the RADIUS secret file {secret_file}: {exc.strerror}",
                             hint="create it with `python -m aovpn_lab.radius.server secret --out FILE`") from None
        if st.st_mode & 0o077:
            raise AovpnError(f"the RADIUS secret file {secret_file} is accessible to others "
                             f"(mode {st.st_mode & 0o777:04o})", hint=f"chmod 600 {secret_file}")
        value = Path(secret_file).read_text().rstrip("\r\n")
        try:
            return Secret(value)
        except ValueError as exc:
            raise AovpnError(f"{secret_file}: {exc}") from None
    value = os.environ.get(secret_env or SECRET_ENV, "")
    if not value:
        raise AovpnError(f"no RADIUS shared secret: neither --secret-file nor ${secret_env or SECRET_ENV} is set",
                         hint="pass --secret-file FILE (mode 0600) or set the environment variable")
    try:
        return Secret(value)
    except ValueError as exc:
        raise AovpnError(f"${secret_env}: {exc}") from None


def make_secret_file(path: str | Path, nbytes: int = 24, value: Secret | None = None) -> dict[str, Any]:
    """Keep a secret file (0600): ``value`` when given (a vault's or the controller's secret,
    rewritten only when it differs), else a random one unless a usable file exists."""
    import secrets
    path = Path(path)
    if value is not None:
        changed = _write_private(path, value.reveal() + "\n")
        return {"changed": changed, "path": str(path), "fingerprint": value.fingerprint()}
    if path.exists():
        secret = read_secret(str(path))
        return {"changed": False, "path": str(path), "fingerprint": secret.fingerprint()}
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value_text = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value_text + "\n")
    return {"changed": True, "path": str(path), "fingerprint": Secret(value_text).fingerprint()}


def write_gateway_conf(out: str | Path, servers: dict[str, str], secret: Secret, port: int = 1812,
                       **retransmit: Any) -> dict[str, Any]:
    """The gateway's eap-radius strongswan.conf fragment, 0600; include it in charon.plugins."""
    text = strongswan_eap_radius({n: (a, secret) for n, a in servers.items()}, port=port, **retransmit)
    changed = _write_private(Path(out), text)
    return {"changed": changed, "path": str(out), "servers": servers, "secret_fingerprint": secret.fingerprint()}


def _pem_text(path: Path) -> str:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise AovpnError(f"cannot read CA file {path}: {exc.strerror}", hint="issue the lab PKI first") from None
    return text if not text or text.endswith("\n") else text + "\n"


def _write_private(path: Path, text: str, mode: int = 0o600) -> bool:
    """Write atomically (mode 0600 unless told); False when the content was already there."""
    try:
        if path.read_text() == text:
            os.chmod(path, mode)
            return False
    except OSError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


# -- command line ----------------------------------------------------------------------
def _pair(text: str) -> tuple[str, str]:
    name, sep, addr = text.partition("=")
    if not sep or not name or not addr:
        raise argparse.ArgumentTypeError(f"expected NAME=ADDRESS, got {text!r}")
    return name, addr


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aovpn_lab.radius.server",
                                description="FreeRADIUS (EAP-TLS) as the lab's NPS stand-in")
    sub = p.add_subparsers(dest="command", required=True)

    def secret_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--secret-file", help="file holding the shared secret (mode 0600)")
        sp.add_argument("--secret-env", default=SECRET_ENV,
                        help=f"environment variable holding the secret (default {SECRET_ENV})")

    u = sub.add_parser("up", help="write the config and (re)start the instance if needed")
    u.add_argument("--state", required=True)
    u.add_argument("--netns")
    u.add_argument("--listen", required=True, help="address to listen on")
    u.add_argument("--port", type=int, default=1812)
    u.add_argument("--ca", action="append", required=True,
                   help="CA certificates of user certificates (PEM; repeatable: root, intermediates)")
    u.add_argument("--cert", required=True, help="server certificate, leaf first then chain (PEM)")
    u.add_argument("--key", required=True, help="server private key (PEM)")
    u.add_argument("--client", action="append", type=_pair, required=True, metavar="NAME=ADDRESS",
                   help="a RADIUS client (the VPN gateway); repeatable")
    u.add_argument("--fragment-size", type=int, default=1024)
    u.add_argument("--tls-max", default="1.2")
    u.add_argument("--timeout", type=float, default=10.0)
    secret_opts(u)

    d = sub.add_parser("down", help="stop the instance by its PID")
    d.add_argument("--state", required=True)
    d.add_argument("--purge", action="store_true", help="also delete the state folder")

    s = sub.add_parser("status")
    s.add_argument("--state", required=True)

    k = sub.add_parser("secret", help="create a random shared secret file (0600) unless it exists")
    k.add_argument("--out", required=True)

    g = sub.add_parser("gateway-conf", help="write the gateway charon's eap-radius settings (0600)")
    g.add_argument("--server", action="append", type=_pair, required=True, metavar="NAME=ADDRESS")
    g.add_argument("--port", type=int, default=1812)
    g.add_argument("--out", required=True)
    g.add_argument("--retransmit-tries", type=int, default=2)
    g.add_argument("--retransmit-timeout", type=float, default=0.5)
    secret_opts(g)

    c = sub.add_parser("check", help="RADIUS health check (Status-Server or EAP-TLS start)")
    c.add_argument("--server", required=True)
    c.add_argument("--port", type=int, default=1812)
    c.add_argument("--netns", help="namespace to send from (the gateway's)")
    c.add_argument("--source", help="source address (must be a configured client)")
    c.add_argument("--kind", choices=("status", "eap"), default="status")
    c.add_argument("--timeout", type=float, default=1.0)
    secret_opts(c)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = _run(args)
    except (AovpnError, ValueError, OSError) as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1
    print(json.dumps(out))
    return 0 if not out.get("failed") else 1


def config(*, listen: str, port: int, ca_files: Sequence[str | Path], cert: str | Path, key: str | Path,
           clients: Sequence[tuple[str, str]], secret: Secret, fragment_size: int = 1024,
           tls_max: str = "1.2") -> RadiusConfig:
    """The server's configuration, its certificate files checked (the pki role issues them)."""
    cfg = RadiusConfig(listen=listen, port=port, ca_files=[Path(c).absolute() for c in ca_files],
                       cert_file=Path(cert).absolute(), key_file=Path(key).absolute(),
                       clients=[RadiusClient(n, a, secret) for n, a in clients],
                       fragment_size=fragment_size, tls_max_version=tls_max)
    for f in (*cfg.ca_files, cfg.cert_file, cfg.key_file):
        if not f.is_file():
            raise AovpnError(f"{f} does not exist", hint="issue the lab PKI first (role pki)")
    return cfg


def check_from(netns: str | None, server: str, secret: Secret, **kw: Any):
    """A health check (radius.health.check) sent from `netns` (None: this namespace)."""
    from .health import check
    if not netns:
        return check(server, secret, **kw)
    from ..ike.craft_netns import run_in_netns
    return run_in_netns(netns, check, server, secret, **kw)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "up":
        secret = read_secret(args.secret_file, args.secret_env)
        cfg = config(listen=args.listen, port=args.port, ca_files=args.ca, cert=args.cert, key=args.key,
                     clients=args.client, secret=secret, fragment_size=args.fragment_size, tls_max=args.tls_max)
        return up(cfg, args.state, args.netns, timeout=args.timeout)
    if args.command == "down":
        return down(args.state, purge=args.purge)
    if args.command == "status":
        return FreeRadius(args.state).status()
    if args.command == "secret":
        return make_secret_file(args.out)
    if args.command == "gateway-conf":
        secret = read_secret(args.secret_file, args.secret_env)
        return write_gateway_conf(args.out, dict(args.server), secret, port=args.port,
                                  retransmit_tries=args.retransmit_tries,
                                  retransmit_timeout=args.retransmit_timeout)
    if args.command == "check":
        secret = read_secret(args.secret_file, args.secret_env)
        result = check_from(args.netns, args.server, secret, kind=args.kind, port=args.port, source=args.source,
                            timeout=args.timeout)
        return {**result.to_json(), "failed": not result.ok, "changed": False}
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
