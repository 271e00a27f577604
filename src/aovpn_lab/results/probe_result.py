"""The shape every probe's result has: one connection attempt, one cause, the phases it
went through with their timings, and the evidence.

Each protocol adds its own fields in a subclass (IKEv2: proposals, NAT, IKE messages;
SSTP: TLS, crypto binding, PPP; TLS VPN: openconnect's TLS and DTLS), so a consumer reads
``connected``, ``cause``, ``outcome``, ``phases``, ``timings``, ``detail`` and ``log`` the
same way on any of them, and ``to_json()`` gives them all as one dict.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Demo(ProbeResult):
    ...     protocol = "tlsvpn"
    ...     elapsed_ms: int = 0
    >>> r = Demo(False, "tcp-443-blocked", 2003, phases=[Phase("tcp", 0, 2003, False)])
    >>> r.outcome, r.reached, r.timings
    ('tcp-443-blocked', '', {'tcp': 2003})
    >>> r.explanation.fix
    'allow TCP 443 outbound (the one port SSTP needs), and check that the server listens on it'
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from . import causes
from .causes import Cause

# Keys every result's JSON ends with, whatever its protocol adds before them.
_TRAILING = ("detail", "phases", "log")


@dataclass
class Phase:
    """One step of an attempt: when it began (ms since the attempt began, None: not
    measured), how long it took (None: unfinished or not measured) and whether it worked."""
    name: str
    start_ms: int | None = None
    ms: int | None = None
    ok: bool | None = None


@dataclass
class ProbeResult:
    """A subclass sets ``protocol`` and declares ``elapsed_ms`` (the attempt's duration)
    among its own positional fields."""
    protocol: ClassVar[str] = ""
    connected: bool
    cause: str
    detail: str = field(default="", kw_only=True)
    phases: list[Phase] = field(default_factory=list, kw_only=True)
    log: list[str] = field(default_factory=list, kw_only=True)
    # the data check: one address pinged through the tunnel (None: not asked for, or no tunnel)
    ping: str | None = field(default=None, kw_only=True)
    ping_ok: bool | None = field(default=None, kw_only=True)
    ping_ms: int | None = field(default=None, kw_only=True)

    @property
    def outcome(self) -> str:
        """What a matrix cell observes: 'connected' or the cause."""
        return "connected" if self.connected else self.cause

    @property
    def reached(self) -> str:
        """The last phase that worked ('' when none did)."""
        return next((p.name for p in reversed(self.phases) if p.ok), "")

    @property
    def timings(self) -> dict[str, int | None]:
        return {p.name: p.ms for p in self.phases}

    @property
    def explanation(self) -> Cause:
        """The cause's meaning and fix from the catalogue."""
        return causes.get(self.cause)

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for key in _TRAILING:
            d[key] = d.pop(key)
        return d

    def summary(self) -> str:
        """A few lines for a person: the head line, what the protocol adds, the detail, and
        for a failure the catalogue's fix."""
        lines = [f"{self.title()}: " + ("CONNECTED" if self.connected else f"FAILED, cause {self.cause}")
                 + f" in {getattr(self, 'elapsed_ms', 0)} ms", *self.summary_lines()]
        if self.detail:
            lines.append(f"  {self.detail}")
        if not self.connected and self.cause in causes.catalogue():
            lines.append(f"  fix: {self.explanation.fix}")
        return "\n".join(lines)

    label_width: ClassVar[int] = 14  # of the summary's row labels

    def title(self) -> str:
        return self.protocol

    def summary_rows(self) -> list[tuple[str, Any]]:
        """(label, value) for the summary; a row without a value is left out."""
        return []

    def summary_lines(self) -> list[str]:
        return [f"  {label:<{self.label_width}} {value}" for label, value in self.summary_rows() if value]

    def ping_line(self) -> list[str]:
        if not self.ping or self.ping_ok is None:
            return []
        took = f" in {self.ping_ms} ms" if self.ping_ms is not None else ""
        return [f"  ping {self.ping} through the tunnel: " + (f"ok{took}" if self.ping_ok else "FAILED")]

    def phase_lines(self) -> list[str]:
        lines = []
        for p in self.phases:
            state = "ok" if p.ok else ("FAILED" if p.ok is False else "unfinished")
            took = f"{p.ms} ms" if p.ms is not None else "-"
            at = f"{p.start_ms:>5} ms" if p.start_ms is not None else "    - ms"
            lines.append(f"  {p.name:<14} {state:<10} at {at}, took {took}")
        return lines
