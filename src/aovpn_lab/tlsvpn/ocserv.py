"""A lab ocserv (OpenConnect/AnyConnect-compatible TLS VPN server), one per network namespace.

Everything lives in the instance folder (mode 0710, group nogroup: the workers
reach the sec-mod socket there; every file in it is 0600 root): ``ocserv.conf``, the certificate
and key copied from a PEM pair, the plain password file (``ocpasswd``, SHA-256 crypt
hashes made by ``openssl passwd -5 -stdin``: passwords travel on stdin only), the
sec-mod socket, the pid file, ``ocserv.out`` and the supervisor's record (``instance.json``). The server hands out IPv4 addresses
from ``pool`` (default 198.19.3.0/24, the server itself answers ping on the pool's first
address), pushes the pool (and any extra ``routes``) as split-include routes and no DNS
at all. ``ocserv -f`` runs under :mod:`aovpn_lab.service` (entry ``ocserv`` of
profiles/daemons.yml; its config from playbooks/roles/ocserv/templates/ocserv.conf.j2):
its main PID is recorded with start time and executable inode, and only it (and the
sec-mod and workers it forked) are ever signalled. Debian's own ocserv service is never
touched.

Command line, for the Ansible role ``playbooks/roles/ocserv``::

    AOVPN_TLSVPN_PASSWORD_ALICE=... python -m aovpn_lab.tlsvpn.ocserv up \\
        --netns aovpn-gw1 --state /var/lib/aovpn-lab/aovpn/hosts/gw1/ocserv \\
        --cert vpn.fullchain.pem --key vpn.key.pem --port 4443 --user alice
    python -m aovpn_lab.tlsvpn.ocserv down --state /var/lib/aovpn-lab/aovpn/hosts/gw1/ocserv

Each prints one JSON object (``{"failed": true, "msg": ...}`` and exit 1 on errors).

    >>> s = OcservSettings(users={"alice": "x"}, port=4443)
    >>> s.ping_target, s
    ('198.19.3.1', OcservSettings(users=['alice'], port=4443, udp=True, pool=198.19.3.0/24, routes=[]))
"""
from __future__ import annotations

import argparse
import grp
import hashlib
import ipaddress
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import tool
from ..errors import AovpnError
from ..passwords import passwords_from_env
from ..service import Daemon, render, spec
from ..service.cli import instance_parser, run
from .script import write_script

OCSERV = "/usr/sbin/ocserv"
OPENSSL = "openssl"
PACKAGE = "ocserv"
STATE_FILE = "instance.json"
RUN_AS_USER, RUN_AS_GROUP = "nobody", "nogroup"
DEFAULT_POOL = "198.19.3.0/24"
# TLS 1.2 and newer only: the same requirement the posture scan checks.
DEFAULT_PRIORITIES = "NORMAL:%SERVER_PRECEDENCE:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"
PASSWORD_ENV_PREFIX = "AOVPN_TLSVPN_PASSWORD_"
PASSWORD_ENV = "AOVPN_TLSVPN_PASSWORD"
_SAFE_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_SAFE_PRIORITIES = re.compile(r"^[A-Za-z0-9%:+\-._]{1,400}$")


class OcservError(AovpnError):
    """The lab ocserv could not be configured, started or stopped."""


# ---------------------------------------------------------------------------- settings


@dataclass
class OcservSettings:
    """What the server serves. Passwords stay out of repr, JSON and logs."""

    users: dict[str, str] = field(default_factory=dict)
    port: int = 443
    udp: bool = True  # DTLS on the same UDP port
    listen_host: str | None = None  # None: all addresses of the namespace
    pool: str = DEFAULT_POOL
    routes: list[str] = field(default_factory=list)  # extra split-include routes (CIDR)
    max_clients: int = 64
    dpd: int = 90
    keepalive: int = 300
    tls_priorities: str = DEFAULT_PRIORITIES

    def __repr__(self) -> str:
        return (f"OcservSettings(users={sorted(self.users)!r}, port={self.port}, udp={self.udp}, "
                f"pool={self.pool}, routes={self.routes!r})")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.pool, strict=False)

    @property
    def ping_target(self) -> str:
        """The server's own address inside the tunnel (ocserv takes the pool's first)."""
        return str(self.network.network_address + 1)

    def validate(self) -> None:
        if not self.users:
            raise OcservError("no users given", hint="pass --user NAME (password from the environment)")
        for user, password in self.users.items():
            if not _SAFE_USER.match(user):
                raise OcservError(f"user name {user!r} is not usable in an ocpasswd file",
                                  hint="letters, digits, '.', '_', '@', '-' (max 64)")
            if not password or any(ch in password for ch in "\r\n\0"):
                raise OcservError(f"the password of user {user!r} is empty or has line breaks")
        if not 1 <= self.port <= 65535:
            raise OcservError(f"port {self.port} is out of range")
        try:
            net = ipaddress.IPv4Network(self.pool, strict=False)
        except ValueError as exc:
            raise OcservError(f"pool {self.pool!r}: {exc}") from None
        if net.prefixlen > 30:
            raise OcservError(f"pool {net} is too small")
        if net.subnet_of(ipaddress.ip_network("192.168.0.0/16")):
            raise OcservError(f"pool {net} is a 192.168 range", hint="use a lab range such as 198.19.3.0/24")
        for route in self.routes:
            try:
                r = ipaddress.IPv4Network(route, strict=False)
            except ValueError as exc:
                raise OcservError(f"route {route!r}: {exc}") from None
            if r.prefixlen == 0:
                raise OcservError("a default route is not pushed in the lab", hint="list the networks")
        if self.listen_host is not None:
            try:
                ipaddress.ip_address(self.listen_host)
            except ValueError:
                raise OcservError(f"listen address {self.listen_host!r} is not an IP address") from None
        if not _SAFE_PRIORITIES.match(self.tls_priorities):
            raise OcservError(f"TLS priority string {self.tls_priorities!r} has unexpected characters")


def render_config(settings: OcservSettings, state_dir: str | Path) -> str:
    """ocserv.conf for an instance whose files all live in ``state_dir``.

    >>> text = render_config(OcservSettings(users={"a": "b"}, port=4443), "/s")
    >>> lines = text.splitlines()
    >>> "tcp-port = 4443" in lines, "udp-port = 4443" in lines, any(l.startswith("dns") for l in lines)
    (True, True, False)
    """
    net = settings.network
    return render(spec("ocserv").templates["ocserv.conf"], state=str(Path(state_dir)), settings=settings,
                  listen_host=settings.listen_host, port=settings.port, udp=settings.udp,
                  run_as_user=RUN_AS_USER, run_as_group=RUN_AS_GROUP, max_clients=settings.max_clients,
                  keepalive=settings.keepalive, dpd=settings.dpd, tls_priorities=settings.tls_priorities,
                  network=net, routes=[net] + [ipaddress.IPv4Network(r, strict=False) for r in settings.routes])


# ---------------------------------------------------------------------- password file


def _openssl_passwd(password: str, salt: str | None = None) -> str:
    argv = [OPENSSL, "passwd", "-5", "-stdin"] + (["-salt", salt] if salt else [])
    try:
        # The password goes on stdin only, never on a command line.
        res = tool.run(argv, step="hash a password", input=password + "\n", timeout=10)
    except tool.ToolError as exc:
        raise OcservError(exc.message, hint="apt-get install -y openssl") from None
    out = res.stdout.strip()
    if not res.ok or not out.startswith("$5$"):
        raise OcservError(f"openssl passwd failed ({res.returncode})")
    return out


def password_file(users: dict[str, str], existing: str = "") -> str:
    """ocpasswd content (``user:*:hash``); hashes of unchanged passwords are kept as they are."""
    old: dict[str, str] = {}
    for line in existing.splitlines():
        parts = line.split(":")
        if len(parts) == 3:
            old[parts[0]] = parts[2]
    lines = []
    for user in sorted(users):
        password = users[user]
        current = old.get(user, "")
        m = re.match(r"^\$5\$([^$]+)\$", current)
        if m and _openssl_passwd(password, m.group(1)) == current:
            lines.append(f"{user}:*:{current}")
        else:
            lines.append(f"{user}:*:{_openssl_passwd(password)}")
    return "\n".join(lines) + "\n"


def check_pem_pair(cert_pem: Path, key_pem: Path) -> tuple[bytes, bytes, str]:
    """(certificate PEM bytes, key PEM bytes, leaf SHA-256) after checking they belong together."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    try:
        cert_data, key_data = Path(cert_pem).read_bytes(), Path(key_pem).read_bytes()
    except OSError as exc:
        raise OcservError(f"cannot read {exc.filename}: {exc.strerror}") from None
    try:
        certs = x509.load_pem_x509_certificates(cert_data)
    except ValueError:
        raise OcservError(f"{cert_pem} holds no PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError):
        raise OcservError(f"{key_pem} is not an unencrypted PEM private key") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certs[0].public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise OcservError(f"the key in {key_pem} does not belong to the first certificate in {cert_pem}",
                          hint="pass the leaf (or fullchain, leaf first) and its own key")
    leaf_sha256 = hashlib.sha256(certs[0].public_bytes(serialization.Encoding.DER)).hexdigest()
    return cert_data, key_data, leaf_sha256


# ---------------------------------------------------------------------------- instance


def _write_private(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class OcservInstance:
    """One ocserv in one network namespace, all state under ``state_dir``."""

    def __init__(self, state_dir: Path | str, netns: str | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self._netns = netns
        self.daemon = Daemon("ocserv", self.state_dir, netns, error=OcservError)

    @property
    def config_path(self) -> Path:
        return self.state_dir / "ocserv.conf"

    def recorded(self) -> dict | None:
        return self.daemon.recorded() or None

    @property
    def netns(self) -> str | None:
        return self.daemon.netns

    def is_running(self) -> bool:
        return self.daemon.running

    def pids(self) -> list[int]:
        """The main process and every live process it forked (sec-mod, workers)."""
        return self.daemon.pids()

    def up(self, settings: OcservSettings, cert_pem: Path | str, key_pem: Path | str, *,
           start_timeout: float = 10.0) -> dict:
        """Start (or keep) the instance with ``settings``; returns a JSON-ready report."""
        began = time.monotonic()
        settings.validate()
        netns = self._require_netns()
        if not os.path.exists(OCSERV):
            raise OcservError(f"{OCSERV} is missing",
                              hint="apt-get install -y --no-install-recommends ocserv "
                                   "(its own service stays stopped; the lab runs its own instance)")
        self._prepare_dir()
        cert_data, key_data, leaf_sha256 = check_pem_pair(Path(cert_pem), Path(key_pem))
        passwd = password_file(settings.users, _read(self.state_dir / "ocpasswd"))
        config = render_config(settings, self.state_dir)
        digest = hashlib.sha256(json.dumps(
            [netns, config, cert_data.decode(), key_data.decode(), passwd]).encode()).hexdigest()

        def write() -> None:
            _write_private(self.state_dir / "server-cert.pem", cert_data)
            _write_private(self.state_dir / "server-key.pem", key_data)
            _write_private(self.state_dir / "ocpasswd", passwd)
            _write_private(self.config_path, config)

        self.daemon = Daemon("ocserv", self.state_dir, netns, error=OcservError,
                             values={"listen": settings.listen_host or "127.0.0.1", "port": settings.port})
        started = self.daemon.ensure(digest, write, timeout=start_timeout)
        script = write_script(self.state_dir)
        self.daemon.note(port=settings.port, udp=settings.udp, pool=str(settings.network),
                         listen_host=settings.listen_host, users=sorted(settings.users),
                         ping_target=settings.ping_target)
        return {
            "changed": started["changed"], "restarted": started["restarted"], "netns": netns,
            "state_dir": str(self.state_dir), "pids": self.pids(), "port": settings.port,
            "udp": settings.udp, "listen_host": settings.listen_host, "pool": str(settings.network),
            "routes": [str(settings.network)] + list(settings.routes),
            "ping_target": settings.ping_target, "users": sorted(settings.users),
            "certificate_sha256": leaf_sha256, "config": str(self.config_path),
            "vpnc_script": str(script), "start_ms": started["start_ms"],
            "seconds": round(time.monotonic() - began, 3),
        }

    def _prepare_dir(self) -> None:
        """Mode 0710, group ``nogroup``: ocserv's workers (nobody:nogroup) must reach the
        sec-mod socket in here; every other file is 0600 root."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            gid = grp.getgrnam(RUN_AS_GROUP).gr_gid
        except KeyError:
            raise OcservError(f"group {RUN_AS_GROUP!r} does not exist") from None
        os.chown(self.state_dir, 0, gid)
        os.chmod(self.state_dir, 0o710)
        for parent in self.state_dir.parents:
            if not os.stat(parent).st_mode & 0o001:
                raise OcservError(f"{parent} is not searchable by others, so ocserv's workers "
                                  f"({RUN_AS_USER}) cannot reach the socket in {self.state_dir}",
                                  hint=f"chmod o+x {parent}, or choose a --state folder elsewhere")

    def _require_netns(self) -> str:
        from ..ike.craft_netns import require_netns
        return require_netns(self._netns, OcservError)

    def down(self, *, grace: float = 4.0) -> dict:
        """Stop the processes this instance started, by PID; leave everything else."""
        result = self.daemon.stop(grace)
        return {"changed": bool(result["stopped"] or result["killed"]), **result,
                "state_dir": str(self.state_dir)}

    def status(self) -> dict:
        state = self.daemon.recorded()
        status = self.daemon.status()
        return {"running": status["running"], "netns": status["netns"], "pids": status["pids"],
                "port": state.get("port"), "listening": status["ready"], "pool": state.get("pool"),
                "users": state.get("users", []), "ping_target": state.get("ping_target"),
                "state_dir": str(self.state_dir)}


# ------------------------------------------------------------------------ command line


def users_from_env(names: list[str], environ=os.environ) -> dict[str, str]:
    return passwords_from_env(names, PASSWORD_ENV_PREFIX, PASSWORD_ENV, environ, OcservError)


def build_parser() -> argparse.ArgumentParser:
    p, _, up = instance_parser("python -m aovpn_lab.tlsvpn.ocserv",
                               "Lab ocserv (AnyConnect-compatible TLS VPN) in a netns.")
    up.add_argument("--cert", required=True, help="server certificate PEM (leaf first; a fullchain works)")
    up.add_argument("--key", required=True, help="its private key, PEM, unencrypted")
    up.add_argument("--user", action="append", default=[], required=True,
                    help=f"user; password from ${PASSWORD_ENV_PREFIX}<USER> (or ${PASSWORD_ENV} for one user)")
    up.add_argument("--port", type=int, default=443, help="TCP (and UDP for DTLS) port")
    up.add_argument("--no-udp", action="store_true", help="no DTLS listener")
    up.add_argument("--listen", help="listen on this address only")
    up.add_argument("--pool", default=DEFAULT_POOL)
    up.add_argument("--route", action="append", default=[], help="extra split-include route (CIDR)")
    return p


def _up(args: argparse.Namespace) -> dict:
    settings = OcservSettings(users=users_from_env(args.user), port=args.port, udp=not args.no_udp,
                              listen_host=args.listen, pool=args.pool, routes=args.route)
    return OcservInstance(args.state, args.netns).up(settings, args.cert, args.key)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv), name="ocserv", up=_up, instance=OcservInstance)


if __name__ == "__main__":
    sys.exit(main())
