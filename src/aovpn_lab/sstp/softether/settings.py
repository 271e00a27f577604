"""What the gateway serves (hub, users, SecureNAT) and the vpncmd batch that sets it.

    >>> SoftEtherSettings(users={"alice": "x"}).login("alice")
    'alice@LAB'
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field

from .errors import SoftEtherError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SAFE_SECRET = re.compile(r"^[\x21\x23-\x7e]{1,127}$")  # printable, no space, no double quote


@dataclass(repr=False)
class SoftEtherSettings:
    """What the gateway serves. Passwords stay out of repr, JSON and logs."""

    users: dict[str, str] = field(default_factory=dict)
    hub: str = "LAB"
    port: int = 443
    admin_port: int = 5555
    nat_host: str = "198.19.2.1"
    nat_mask: str = "255.255.255.0"
    dhcp_start: str = "198.19.2.10"
    dhcp_end: str = "198.19.2.200"

    def __repr__(self) -> str:
        return (f"SoftEtherSettings(hub={self.hub!r}, users={sorted(self.users)!r}, port={self.port}, "
                f"nat={self.nat_host}/{self.nat_mask}, dhcp={self.dhcp_start}-{self.dhcp_end})")

    def login(self, user: str) -> str:
        """The name a client authenticates with: SoftEther hub users are user@HUB."""
        return f"{user}@{self.hub}"

    def validate(self) -> None:
        for what, value in [("hub", self.hub), *(("user", u) for u in self.users)]:
            if not _SAFE_NAME.match(value):
                raise SoftEtherError(f"{what} name {value!r} is not usable with vpncmd",
                                     hint="letters, digits, '.', '_', '-' (max 64, no '@')")
        for user, password in self.users.items():
            if not _SAFE_SECRET.match(password or ""):
                raise SoftEtherError(f"the password of user {user!r} is empty or has spaces, "
                                     "quotes or control characters",
                                     hint="use printable ASCII without spaces or '\"'")
        for port in (self.port, self.admin_port):
            if not 1 <= port <= 65535:
                raise SoftEtherError(f"port {port} is out of range")
        try:
            net = ipaddress.ip_network(f"{self.nat_host}/{self.nat_mask}", strict=False)
            start, end = ipaddress.ip_address(self.dhcp_start), ipaddress.ip_address(self.dhcp_end)
        except ValueError as exc:
            raise SoftEtherError(f"SecureNAT addresses: {exc}") from None
        if net.subnet_of(ipaddress.ip_network("192.168.0.0/16")):
            raise SoftEtherError(f"SecureNAT network {net} is a 192.168 range",
                                 hint="use a lab range such as 198.19.2.0/24")
        if not (start in net and end in net and start <= end):
            raise SoftEtherError(f"DHCP pool {start}-{end} is not inside {net}")
        if ipaddress.ip_address(self.nat_host) in (start, end) or start <= ipaddress.ip_address(
                self.nat_host) <= end:
            raise SoftEtherError(f"the SecureNAT host {self.nat_host} is inside the DHCP pool")

    def digest(self) -> str:
        """Changes whenever anything the batch sets changes (passwords only as hashes)."""
        material = json.dumps({
            "hub": self.hub, "port": self.port, "admin": self.admin_port,
            "nat": [self.nat_host, self.nat_mask, self.dhcp_start, self.dhcp_end],
            "users": {u: hashlib.sha256(p.encode()).hexdigest() for u, p in sorted(self.users.items())},
        }, sort_keys=True)
        return hashlib.sha256(material.encode()).hexdigest()


@dataclass
class Command:
    line: str
    ok_codes: frozenset[int] = frozenset()


def vpncmd_batch(settings: SoftEtherSettings, admin_password: str) -> list[Command]:
    """The vpncmd commands that configure the hub, users, SecureNAT and SSTP."""
    s = settings
    hub_password = hashlib.sha256(("hub:" + admin_password).encode()).hexdigest()[:32]
    psk = hashlib.sha256(("psk:" + admin_password).encode()).hexdigest()[:9]
    # The admin password itself is in vpn_server.config (HashedPassword) before start.
    commands = [
        Command(f"HubCreate {s.hub} /PASSWORD:{hub_password}", frozenset({57})),  # exists
        Command(f"Hub {s.hub}"),
    ]
    for user in sorted(s.users):
        commands += [
            Command(f"UserCreate {user} /GROUP:none /REALNAME:none /NOTE:none", frozenset({66})),
            Command(f"UserPasswordSet {user} /PASSWORD:{s.users[user]}"),
        ]
    commands += [
        Command(f"SecureNatHostSet /MAC:none /IP:{s.nat_host} /MASK:{s.nat_mask}"),
        Command(f"DhcpSet /START:{s.dhcp_start} /END:{s.dhcp_end} /MASK:{s.nat_mask} /EXPIRE:7200 "
                f"/GW:{s.nat_host} /DNS:none /DNS2:none /DOMAIN:none /LOG:no"),
        Command("SecureNatEnable"),
        Command("Hub"),
        Command("ProtoOptionsSet SSTP /NAME:Enabled /VALUE:true"),
        Command("ProtoOptionsSet OpenVPN /NAME:Enabled /VALUE:false"),
        Command(f"IPsecEnable /L2TP:no /L2TPRAW:no /ETHERIP:no /PSK:{psk} /DEFAULTHUB:{s.hub}"),
        Command("VpnOverIcmpDnsEnable /ICMP:no /DNS:no"),
        Command("KeepDisable"),
        Command("Flush"),
    ]
    return commands


_PROMPT = re.compile(r"^VPN Server(?:/[^>]*)?>(.*)$")
_ERROR = re.compile(r"Error occurred\. \(Error code: (\d+)\)")


def check_vpncmd_output(output: str, commands: list[Command], secrets_: list[str]) -> list[str]:
    """Per-command errors that are not in the command's ``ok_codes``; redacted text."""
    text = redact(output, secrets_)
    chunks: list[list[str]] = []
    for line in text.splitlines():
        match = _PROMPT.match(line.strip())
        if match and match.group(1).strip():
            chunks.append([match.group(1).strip()])
        elif chunks:
            chunks[-1].append(line)
    problems = []
    if len(chunks) < len(commands):
        tail = " | ".join(l.strip() for l in text.splitlines()[-6:] if l.strip())
        problems.append(f"vpncmd ran {len(chunks)} of {len(commands)} commands: {tail}")
    for command, chunk in zip(commands, chunks):
        body = "\n".join(chunk[1:])
        for code in (int(c) for c in _ERROR.findall(body)):
            if code not in command.ok_codes:
                detail = next((l.strip() for l in chunk[1:] if l.strip() and "Error occurred" not in l), "")
                problems.append(f"`{chunk[0]}` failed with error {code}: {detail}")
        if "It is not possible to specify this parameter" in body or "is an invalid" in body:
            problems.append(f"`{chunk[0]}`: {body.strip().splitlines()[0]}")
    return problems


def redact(text: str, secrets_: list[str]) -> str:
    for secret in sorted((s for s in secrets_ if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return re.sub(r"(/PASSWORD:|ServerPasswordSet )\S+", r"\1***", text)
