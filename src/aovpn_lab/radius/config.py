"""FreeRADIUS instance configuration for the lab's NPS stand-in: rendered, never copied.

An Always On VPN user tunnel authenticates with EAP-TLS, and RRAS relays the EAP
conversation to NPS over RADIUS. In the lab the gateway's charon (eap-radius) relays it
to a FreeRADIUS instance configured here: one `eap` module doing TLS only, verifying
user certificates against the lab CA, and one RADIUS client per gateway.

    >>> cfg = RadiusConfig(listen="198.51.100.242", ca_files=[Path("/pki/ca.pem")],
    ...                    cert_file=Path("/pki/radius.example.net.fullchain.pem"),
    ...                    key_file=Path("/pki/radius.example.net.key.pem"),
    ...                    clients=[RadiusClient("gw", "198.51.100.241", Secret("s3cret"))])
    >>> cfg                                                  # doctest: +ELLIPSIS
    RadiusConfig(listen='198.51.100.242', port=1812, clients=[RadiusClient(name='gw', address='198.51.100.241', secret=Secret('***'))], ...)
    >>> sorted(render(cfg, Path("/state")))
    ['clients.conf', 'radiusd.conf']

Instance layout under a state folder (see `InstancePaths`): ``raddb/`` the rendered
tree (both files mode 0600, folder 0700; clients.conf holds the shared secrets),
``log/radius.log`` FreeRADIUS's own log, ``log/console.log`` its stdout/stderr,
``run/`` its run_dir and pid file, ``instance.json`` the PID (with start time and
executable) of the server this package started, and the fingerprint of its config.

The shared secret is a `Secret`: it shows as ``***`` in repr, str, logs and JSON, and is
only revealed when rendering clients.conf (or the gateway's eap-radius section).
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

#: FreeRADIUS's own defaults for modules and dictionaries on Debian 12.
LIBDIR = "/usr/lib/freeradius"
DICTDIR = "/usr/share/freeradius"

#: The gateway charon's eap-radius section (a strongswan.conf fragment with the secret).
EAP_RADIUS_TEMPLATE = "playbooks/roles/freeradius/templates/eap-radius.conf.j2"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")


class Secret:
    """A RADIUS shared secret. Never shown: repr/str/format give ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str) or not value:
            raise ValueError("the RADIUS shared secret is empty")
        if len(value.encode()) > 128:
            raise ValueError("the RADIUS shared secret is longer than 128 bytes")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("the RADIUS shared secret contains control characters (newline, tab, ...)")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        """A short, non-reversible tag to tell two secrets apart in logs (not the secret)."""
        return hashlib.sha256(b"aovpn-radius-secret:" + self._value.encode()).hexdigest()[:8]

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # no pickling a secret into some cache by accident
        raise TypeError("a RADIUS Secret is not picklable")


@dataclass
class RadiusClient:
    """A NAS allowed to talk to the server: the VPN gateway (RRAS in production)."""
    name: str
    address: str            # an address or a CIDR prefix
    secret: Secret

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"invalid RADIUS client name {self.name!r} (letters, digits, '_.-')")
        ipaddress.ip_network(self.address, strict=False)  # ValueError if not an address/prefix
        if not isinstance(self.secret, Secret):
            self.secret = Secret(self.secret)


@dataclass
class RadiusConfig:
    listen: str                                  # address to listen on (inside the namespace)
    ca_files: list[Path]                         # CAs of user certificates (PEM: root, intermediates)
    cert_file: Path                              # the server's certificate, leaf first then its chain
    key_file: Path                               # its private key (unencrypted PEM)
    clients: list[RadiusClient] = field(default_factory=list)
    port: int = 1812
    tls_min_version: str = "1.2"
    tls_max_version: str = "1.2"                 # strongSwan 5.9's EAP-TLS peer speaks TLS 1.2
    fragment_size: int = 1024                    # EAP-TLS fragment size (NPS: "Framed-MTU", 1344 by default)
    reject_delay: int = 0                        # seconds; FreeRADIUS's default 1 s only slows the lab down
    max_request_time: int = 10

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.listen)
        if isinstance(self.ca_files, (str, Path)):
            self.ca_files = [self.ca_files]
        self.ca_files = [Path(p) for p in self.ca_files]
        if not self.ca_files:
            raise ValueError("at least one CA file is needed to verify user certificates")
        self.cert_file, self.key_file = Path(self.cert_file), Path(self.key_file)
        if not 1 <= int(self.port) <= 65535:
            raise ValueError(f"invalid RADIUS port {self.port}")
        for v in (self.tls_min_version, self.tls_max_version):
            if v not in _TLS_VERSIONS:
                raise ValueError(f"invalid TLS version {v!r} (one of {', '.join(_TLS_VERSIONS)})")
        if not 64 <= int(self.fragment_size) <= 4096:
            raise ValueError(f"EAP-TLS fragment_size {self.fragment_size} out of range 64..4096")
        names = [c.name for c in self.clients]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate RADIUS client names: {names}")

    def __repr__(self) -> str:
        return (f"RadiusConfig(listen={self.listen!r}, port={self.port}, clients={self.clients!r}, "
                f"ca_files={[str(p) for p in self.ca_files]!r}, cert_file={str(self.cert_file)!r}, "
                f"tls={self.tls_min_version}-{self.tls_max_version})")

    def describe(self) -> dict:
        """JSON-safe summary without secrets."""
        return {"listen": self.listen, "port": self.port, "ca_files": [str(p) for p in self.ca_files],
                "cert_file": str(self.cert_file), "key_file": str(self.key_file),
                "tls": [self.tls_min_version, self.tls_max_version], "fragment_size": self.fragment_size,
                "clients": [{"name": c.name, "address": c.address, "secret": "***"} for c in self.clients]}


@dataclass(frozen=True)
class InstancePaths:
    """Where an instance keeps its files; the log, console and PID record are the
    ``freeradius`` entry of profiles/daemons.yml (the supervisor writes and reads them)."""

    state: Path
    raddb: Path = field(init=False)
    log_dir: Path = field(init=False)
    log: Path = field(init=False)        # FreeRADIUS's own log
    console: Path = field(init=False)    # its stdout/stderr
    run_dir: Path = field(init=False)
    pidfile: Path = field(init=False)    # the supervisor's record: PID, start time, executable
    ca_bundle: Path = field(init=False)  # several CA files joined: FreeRADIUS takes one ca_file

    def __post_init__(self) -> None:
        from ..service import spec
        entry = spec("freeradius")
        state = Path(self.state)
        for name, where in (("raddb", "raddb"), ("log_dir", "log"), ("log", entry.log), ("console", entry.console),
                            ("run_dir", "run"), ("pidfile", entry.record), ("ca_bundle", "raddb/ca-bundle.pem")):
            object.__setattr__(self, name, state / where)


def quote(value: str) -> str:
    """A FreeRADIUS double-quoted string (with ``correct_escapes = true``)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _path(p: Path) -> str:
    s = str(p)
    if any(c in s for c in '"\\\n\r') or not s.startswith("/"):
        raise ValueError(f"unusable path for FreeRADIUS (absolute, no quotes/backslashes): {s!r}")
    return quote(s)


def render(cfg: RadiusConfig, state: Path) -> dict[str, str]:
    """The instance's raddb tree as {file name: text}; clients.conf holds the secrets.

    Templates: the ``freeradius`` entry of profiles/daemons.yml (one per file).
    """
    from ..service import render as render_template, spec
    paths = InstancePaths(Path(state))
    values = {"cfg": cfg, "paths": paths, "clients": cfg.clients, "ca_file": ca_file(cfg, paths), "libdir": LIBDIR}
    filters = {"rpath": _path, "rquote": quote}
    return {Path(dest).name: render_template(template, filters=filters, **values)
            for dest, template in spec("freeradius").templates.items()}


def ca_file(cfg: RadiusConfig, paths: InstancePaths) -> Path:
    """The file FreeRADIUS reads trust anchors from: the only CA file, or the joined bundle."""
    return cfg.ca_files[0] if len(cfg.ca_files) == 1 else paths.ca_bundle


def fingerprint(files: dict[str, str], inputs: list[Path] = ()) -> str:
    """A hash of the rendered tree and of the files it points at (certificates, key), to
    tell whether a running instance is up to date (a re-issued PKI means a restart)."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    for p in inputs:
        try:
            data = Path(p).read_bytes()
        except OSError:
            data = b"<missing>"
        h.update(str(p).encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def strongswan_eap_radius(servers: dict[str, tuple[str, Secret]], *, port: int = 1812,
                          retransmit_tries: int = 2, retransmit_timeout: float = 0.5,
                          retransmit_base: float = 1.4, nas_identifier: str | None = None) -> str:
    """The gateway charon's eap-radius settings, as a strongswan.conf fragment.

    Meant to be written to its own 0600 file and pulled into the ``charon { plugins { } }``
    section with ``include``, so the secret never passes through Ansible variables.
    The short retransmit policy makes an unanswered RADIUS server fail the exchange before
    the client's own IKE retransmits give up (~3 s with profiles/charon.yml).
    """
    from ..service import render as render_template
    checked = []
    for name, (address, secret) in servers.items():
        if not _NAME.match(name):
            raise ValueError(f"invalid RADIUS server name {name!r}")
        ipaddress.ip_address(address)
        checked.append({"name": name, "address": address,
                        "secret": secret if isinstance(secret, Secret) else Secret(secret)})
    return render_template(EAP_RADIUS_TEMPLATE, filters={"swan_quote": _swan_quote}, servers=checked, port=port,
                           retransmit_tries=retransmit_tries, retransmit_timeout=retransmit_timeout,
                           retransmit_base=retransmit_base, nas_identifier=nas_identifier)


def _swan_quote(value: str) -> str:
    """A strongswan.conf double-quoted value (backslash escapes \\" and \\\\)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
