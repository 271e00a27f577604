"""Readiness tests: when a started daemon serves (the `ready` kinds of profiles/daemons.yml).

    >>> Ready("unix", ["/nonexistent/sock"]).check(None)
    False
    >>> Ready("tcp", ["127.0.0.1:1"]).check(None)
    False
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from ..ike.craft_netns import tcp_open


def split_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def unix_open(path: Path, timeout: float) -> bool:
    """Does a server accept on the unix socket at `path`? A socket file left by a daemon
    that died does not count (connecting to it is refused)."""
    if not path.is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


@dataclass
class Ready:
    """One declared test. `log` reads the log from where it ended before the start."""

    kind: str
    targets: list[str]
    log: Path | None = None
    offset: int = 0
    timeout: float = 0.2
    _seen: str = field(default="", repr=False)

    def mark(self) -> None:
        """Remember where the log ends now: only what is written after counts."""
        try:
            self.offset = self.log.stat().st_size if self.log else 0
        except OSError:
            self.offset = 0

    def busy(self, netns: str | None) -> list[str]:
        """Targets that already answer before the start: someone else holds them."""
        if self.kind != "tcp":
            return []
        return [t for t in self.targets if tcp_open(netns, *split_address(t), 0.3)]

    def check(self, netns: str | None) -> bool:
        if self.kind == "tcp":
            return all(tcp_open(netns, *split_address(t), self.timeout) for t in self.targets)
        if self.kind == "unix":
            return all(unix_open(Path(t), self.timeout) for t in self.targets)
        if self.kind == "log":
            try:
                with open(self.log, "rb") as handle:
                    handle.seek(self.offset)
                    text = handle.read().decode(errors="replace")
            except (OSError, TypeError):
                return False
            return all(t in text for t in self.targets)
        raise ValueError(f"unknown readiness kind {self.kind!r}")

    def describe(self) -> str:
        what = {"tcp": "listen on", "unix": "open", "log": "log"}[self.kind]
        return f"{what} {' and '.join(self.targets)}"
