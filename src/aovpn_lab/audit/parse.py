"""The text RRAS/NPS commands print, read into dicts.

PowerShell's Format-List has no parser library: it prints blocks of ``Name : Value``
lines, one block per object, blank lines between, and wraps a long value onto lines
indented to the value's column:

    >>> blocks = format_list('''
    ... Subject              : CN=vpn.corp.example.com
    ... EnhancedKeyUsageList : {Server Authentication (1.3.6.1.5.5.7.3.1), IP
    ...                        security IKE intermediate (1.3.6.1.5.5.8.2.2)}
    ... Empty                :
    ...
    ... Subject              : CN=rras1
    ... ''')
    >>> [b["Subject"] for b in blocks]
    ['CN=vpn.corp.example.com', 'CN=rras1']
    >>> as_list(blocks[0]["EnhancedKeyUsageList"])
    ['Server Authentication (1.3.6.1.5.5.7.3.1)', 'IP security IKE intermediate (1.3.6.1.5.5.8.2.2)']
    >>> blocks[0]["Empty"]
    ''

`netsh nps show np` prints ``Name = Value`` headers and attribute tables (nps_policies).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# A Format-List line: the name starts the line, then padding, " : " (or " :" at the end).
_FL_LINE = re.compile(r"^(\S[^:]*?)\s*:(?: (.*)|)$")
# Get-ItemProperty adds these to every key it reads: they describe the key, not its values.
_PS_NOTE = ("PSPath", "PSParentPath", "PSChildName", "PSDrive", "PSProvider")


class ParseError(ValueError):
    """A text that is not in the shape its command prints."""


def format_list(text: str) -> list[dict[str, str]]:
    """Blocks of ``Name : Value``; a name seen twice in a row starts a new block too.
    An indented line continues the last value, even past a blank line (an X509
    certificate's text has one between [Subject] and [Issuer])."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    target: tuple[dict[str, str], str] | None = None
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        m = _FL_LINE.match(line)
        if m and not line[0].isspace():
            name, value = m.group(1).strip(), (m.group(2) or "").strip()
            if name in current:
                blocks.append(current)
                current = {}
            current[name] = value
            target = (current, name)
        elif line[0].isspace() and target is not None:
            block, name = target
            if not current and blocks and blocks[-1] is block:
                current = blocks.pop()   # the blank line was inside the value, not between objects
            block[name] = f"{block[name]} {line.strip()}".strip()
        else:
            raise ParseError(f"not a 'Name : Value' line: {line.strip()!r}")
    if current:
        blocks.append(current)
    return blocks


def one(text: str) -> dict[str, str]:
    """The single object a Get- cmdlet printed (the first, if it printed several)."""
    blocks = format_list(text)
    return blocks[0] if blocks else {}


def as_list(value: str | None) -> list[str]:
    """``{a, b}`` -> [a, b]; ``{}`` and '' -> []; a plain value -> [value].

    >>> as_list("{EAP, MsChapv2}"), as_list("{}"), as_list("Certificates")
    (['EAP', 'MsChapv2'], [], ['Certificates'])
    """
    value = (value or "").strip()
    if value.startswith("{") and value.endswith("}"):
        value = value[1:-1]
    return [v.strip() for v in value.split(",") if v.strip()]


def field_name(name: str) -> str:
    """A property as Format-List * prints it, without a default view's unit suffix.

    >>> field_name("SALifeTime(s)"), field_name("SADataSizeForRenegotiation(KB)")
    ('SALifeTime', 'SADataSizeForRenegotiation')
    """
    return re.sub(r"\((s|KB)\)$", "", name)


def registry_values(text: str) -> dict[str, str]:
    """The values of one key as ``Get-ItemProperty | Format-List *`` prints them.

    >>> registry_values('''
    ... EnableServerFragmentation : 1
    ... PSPath                    : Microsoft.PowerShell.Core\\\\Registry::HKEY_LOCAL_MACHINE\\\\SYSTEM
    ... ''')
    {'EnableServerFragmentation': '1'}
    """
    out: dict[str, str] = {}
    for block in format_list(text):
        out.update({k: v for k, v in block.items() if k not in _PS_NOTE})
    return out


def registry_keys(text: str) -> dict[str, dict[str, str]]:
    """Several keys (``Get-ChildItem -Recurse | Get-ItemProperty``), by key path (PSPath
    without its provider prefix)."""
    out: dict[str, dict[str, str]] = {}
    for block in format_list(text):
        path = block.get("PSPath", "")
        if not path:
            raise ParseError("a registry block without PSPath")
        key = path.split("::", 1)[-1]
        out[key] = {k: v for k, v in block.items() if k not in _PS_NOTE}
    return out


def binary(value: str) -> bytes | None:
    """A REG_BINARY as Format-List prints it (``{163, 25, 2}``); None when not bytes.

    >>> binary("{1, 2, 255}").hex(), binary("abc")
    ('0102ff', None)
    """
    items = as_list(value)
    try:
        data = bytes(int(x) for x in items)
    except ValueError:
        return None
    return data if items else None


@dataclass
class NpsPolicy:
    name: str
    state: str = ""
    order: int | None = None
    conditions: list[tuple[str, str, str]] = field(default_factory=list)
    profile: list[tuple[str, str, str]] = field(default_factory=list)

    def profile_values(self, attribute: str) -> list[str]:
        return [v for n, _, v in self.profile if n == attribute]


_NETSH_PAIR = re.compile(r"^(\S.*?)\s+=\s?(.*)$")
_NETSH_ATTR = re.compile(r"^(\S+)\s+(0x[0-9A-Fa-f]+)\s+(.*)$")


def nps_policies(text: str) -> list[NpsPolicy]:
    """The network policies of ``netsh nps show np``, in the order printed.

    >>> [p.name for p in nps_policies('''
    ... Network policy configuration:
    ... ----------------------------------------------------------
    ... Name                              = AOVPN user tunnel
    ... State                             = Enabled
    ... Processing order                  = 1
    ... Profile attributes:
    ... Name                              Id          Value
    ... ----------------------------------------------------------
    ... msNPAction                        0x1fb0      GRANT
    ... Ok.
    ... ''')]
    ['AOVPN user tunnel']
    """
    policies: list[NpsPolicy] = []
    section = None
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line or set(line) == {"-"} or line == "Ok.":
            continue
        if line.startswith("Network policy configuration"):
            policies.append(NpsPolicy(name=""))
            section = "head"
            continue
        if not policies:
            raise ParseError(f"text before the first 'Network policy configuration': {line!r}")
        policy = policies[-1]
        if line.startswith("Condition attributes"):
            section = "conditions"
        elif line.startswith("Profile attributes"):
            section = "profile"
        elif section in ("conditions", "profile") and line.split()[:2] == ["Name", "Id"]:
            continue
        elif section == "head" and (m := _NETSH_PAIR.match(line)):
            key, value = m.group(1), m.group(2).strip()
            if key == "Name":
                policy.name = value
            elif key == "State":
                policy.state = value
            elif key == "Processing order" and value.isdigit():
                policy.order = int(value)
        elif section in ("conditions", "profile") and (m := _NETSH_ATTR.match(line)):
            getattr(policy, section).append((m.group(1), m.group(2), m.group(3).strip()))
        else:
            raise ParseError(f"not a netsh nps line: {line!r}")
    if any(not p.name for p in policies):
        raise ParseError("a network policy without a Name")
    return policies


# msNPAllowedEapType's value starts with the EAP type (RFC 3748 numbers, IANA registry).
EAP_TYPES = {0x0D: "EAP-TLS", 0x19: "PEAP", 0x1A: "EAP-MSCHAPv2"}


def eap_type(value: str) -> str | None:
    """The EAP method a msNPAllowedEapType value names (its first byte).

    >>> eap_type("0d000000000000000000000000000000"), eap_type("19000000")
    ('EAP-TLS', 'PEAP')
    """
    value = value.strip().strip('"')
    try:
        first = int(value[:2], 16)
    except ValueError:
        return None
    return EAP_TYPES.get(first, f"EAP type {first}")
