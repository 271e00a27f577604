"""vpn_server.config: a small reader/writer for SoftEther's ``declare NAME { type name value }``.

    >>> root = parse_cfg("declare root\\n{\\n\\tuint Port 443\\n}\\n")
    >>> root.folder("root").get("Port"), write_cfg(root).splitlines()[-3:]
    ('443', ['{', '\\tuint Port 443', '}'])
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SoftEtherError


@dataclass
class CfgFolder:
    name: str
    items: list = field(default_factory=list)  # CfgFolder | [type, name, value]

    def folder(self, *path: str) -> CfgFolder:
        here = self
        for name in path:
            found = next((i for i in here.items if isinstance(i, CfgFolder) and i.name == name), None)
            if found is None:
                found = CfgFolder(name)
                here.items.append(found)
            here = found
        return here

    def set(self, kind: str, name: str, value: str) -> None:
        for item in self.items:
            if isinstance(item, list) and item[1] == name:
                item[0], item[2] = kind, value
                return
        self.items.append([kind, name, value])

    def setdefault(self, kind: str, name: str, value: str) -> None:
        if self.get(name) is None:
            self.items.append([kind, name, value])

    def get(self, name: str) -> str | None:
        return next((i[2] for i in self.items if isinstance(i, list) and i[1] == name), None)

    def drop_folder(self, name: str) -> None:
        self.items = [i for i in self.items if not (isinstance(i, CfgFolder) and i.name == name)]


def parse_cfg(text: str) -> CfgFolder:
    root = CfgFolder("")
    stack = [root]
    pending: str | None = None
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "//")):
            continue
        if line.startswith("declare "):
            pending = line.split(None, 1)[1]
        elif line == "{":
            if pending is None:
                raise SoftEtherError(f"vpn_server.config line {number}: '{{' without declare")
            folder = CfgFolder(pending)
            stack[-1].items.append(folder)
            stack.append(folder)
            pending = None
        elif line == "}":
            if len(stack) == 1:
                raise SoftEtherError(f"vpn_server.config line {number}: unbalanced '}}'")
            stack.pop()
        else:
            parts = line.split(None, 2)
            if len(parts) < 2:
                raise SoftEtherError(f"vpn_server.config line {number}: cannot read {line[:60]!r}")
            stack[-1].items.append([parts[0], parts[1], parts[2] if len(parts) > 2 else ""])
    if len(stack) != 1:
        raise SoftEtherError("vpn_server.config: a folder is not closed")
    return root


def write_cfg(root: CfgFolder) -> str:
    lines = ["\ufeff# Software Configuration File",
             "# Written by aovpn_lab.sstp.softether; vpnserver rewrites it on exit.", ""]

    def emit(folder: CfgFolder, depth: int) -> None:
        pad = "\t" * depth
        lines.append(f"{pad}declare {folder.name}")
        lines.append(f"{pad}{{")
        for item in folder.items:
            if isinstance(item, CfgFolder):
                emit(item, depth + 1)
            else:
                lines.append(f"{pad}\t{item[0]} {item[1]} {item[2]}".rstrip())
        lines.append(f"{pad}}}")

    for item in root.items:
        if isinstance(item, CfgFolder):
            emit(item, 0)
    return "\n".join(lines) + "\n"

