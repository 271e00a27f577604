"""When an IKE request counts as lost: a bounded multiple of the path's round trip.

A request that goes unanswered is given up `factor` x RTT after it was first sent, never
sooner than a floor nor later than a ceiling (profiles/charon.yml, `give_up`). The RTT is
measured on the attempt itself: its IKE_SA_INIT's round trip, or, while that is still
unanswered, the answers of the differential test running beside it (same namespace, same
gateway). A request that had to be retransmitted gives no sample (Karn's rule: which
transmission an answer belongs to cannot be told). Against a real deployment the floor also
follows the jitter of the samples (RFC 6298: RTO = SRTT + 4 x RTTVAR). docs/timing.md.

    >>> rule = GiveUpRule(factor=8, floor_s=0.4, ceiling_s=3.0)
    >>> rule.after(0.001), rule.after(0.2), rule.after(None), rule.after(1.0)
    (0.4, 1.6, 3.0, 3.0)
    >>> ext = GiveUpRule(8, 0.4, 3.0, external=True, external_floor_s=1.0, external_ceiling_s=4.0)
    >>> ext.after(0.05), ext.after(0.05, jitter=0.3), ext.after(0.3)
    (1.0, 1.25, 2.4)
"""
from __future__ import annotations

import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import AovpnError
from . import profiles
from .session import Initiation, ViciSession

GENERATING = re.compile(r"^generating (\S+) request (\d+) ")
PARSED_RESPONSE = re.compile(r"^parsed (\S+) response (\d+) ")
RETRANSMIT = re.compile(r"^retransmit \d+ of request with message ID (\d+)$")


@dataclass(frozen=True)
class GiveUpRule:
    factor: float
    floor_s: float
    ceiling_s: float
    external: bool = False           # a real deployment: its floor and ceiling, jitter counts
    external_floor_s: float = 1.0
    external_ceiling_s: float = 4.0
    jitter_factor: float = 4.0

    @classmethod
    def from_settings(cls, *, external: bool = False, settings: dict | None = None) -> "GiveUpRule":
        """The rule of profiles/charon.yml (`give_up`): its values are the only ones."""
        try:
            g = (settings if settings is not None else profiles.charon_settings())["give_up"]
            ext = g["external"]
            return cls(float(g["factor"]), float(g["floor_s"]), float(g["ceiling_s"]), external,
                       float(ext["floor_s"]), float(ext["ceiling_s"]), float(ext["jitter_factor"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AovpnError(f"profiles/charon.yml: give_up: {exc} is missing or not a number",
                             hint="give_up: {factor, floor_s, ceiling_s, external: {floor_s, ceiling_s, "
                                  "jitter_factor}}") from None

    @property
    def floor(self) -> float:
        return self.external_floor_s if self.external else self.floor_s

    @property
    def ceiling(self) -> float:
        return self.external_ceiling_s if self.external else self.ceiling_s

    def after(self, rtt: float | None, jitter: float = 0.0) -> float:
        """Seconds a request may go unanswered; `rtt` None: nothing has answered yet."""
        if rtt is None:
            return self.ceiling
        floor = self.floor
        if self.external:
            floor = max(floor, rtt + self.jitter_factor * jitter)
        return round(min(self.ceiling, max(floor, self.factor * rtt)), 3)

    def describe(self) -> str:
        floor = f"{self.floor:g} s" + (f" or RTT + {self.jitter_factor:g} x jitter" if self.external else "")
        return (f"{self.factor:g} x RTT, at least {floor}, at most {self.ceiling:g} s; {self.ceiling:g} s before "
                f"any answer (profiles/charon.yml give_up{', external' if self.external else ''})")


@dataclass
class RoundTrips:
    """The round-trip samples of one attempt, or of a crowd of clients on one path
    (thread-safe: the differential test, or the crowd's other clients, add theirs)."""
    rule: GiveUpRule
    own: list[float] = field(default_factory=list)     # the attempts' IKE_SA_INITs
    others: list[float] = field(default_factory=list)  # the differential test's answers
    settled: bool = False   # the attempt has its answer: whoever still waits stops now
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def learn(self, rtt: float, *, own: bool) -> None:
        with self._lock:
            (self.own if own else self.others).append(rtt)

    @property
    def rtt(self) -> float | None:
        """The smallest sample: the path's round trip without queueing (the attempts' own first)."""
        with self._lock:
            samples = self.own or self.others
            return min(samples) if samples else None

    @property
    def jitter(self) -> float:
        """Mean deviation of all samples from their median (0 with fewer than two)."""
        with self._lock:
            samples = self.own + self.others
        if len(samples) < 2:
            return 0.0
        mid = statistics.median(samples)
        return sum(abs(s - mid) for s in samples) / len(samples)

    def allowance(self) -> float:
        return self.rule.after(self.rtt, self.jitter)

    def deadline(self, sent_at: float) -> float:
        return float("-inf") if self.settled else sent_at + self.allowance()

    def settle(self) -> None:
        """The attempt no longer needs an explanation: the differential test stops waiting."""
        self.settled = True

    def evidence(self) -> dict[str, Any]:
        rtt = self.rtt
        source = "this attempt's IKE_SA_INIT" if self.own else \
            ("the differential test's answers" if self.others else "nothing answered")
        return {"measured: round trip (ms)": "-" if rtt is None else round(rtt * 1000, 2),
                "measured: round trip from": source,
                "measured: jitter (ms)": round(self.jitter * 1000, 2),
                "configured: give-up rule": self.rule.describe(),
                "derived: give up an unanswered request after (s)": self.allowance()}


@dataclass
class Outstanding:
    exchange: str
    message_id: int
    sent_at: float
    retransmitted: bool = False


class RequestClock:
    """The request charon is waiting on, read from its log entries as they arrive."""

    def __init__(self, trips: RoundTrips) -> None:
        self.trips = trips
        self.outstanding: Outstanding | None = None

    def feed(self, at: float, line: str) -> None:
        line = line.strip()
        if m := GENERATING.match(line):
            self.outstanding = Outstanding(m.group(1), int(m.group(2)), at)
        elif (m := RETRANSMIT.match(line)) and self.outstanding and self.outstanding.message_id == int(m.group(1)):
            self.outstanding.retransmitted = True
        elif (m := PARSED_RESPONSE.match(line)) and self.outstanding and \
                self.outstanding.message_id == int(m.group(2)):
            o = self.outstanding
            # Only IKE_SA_INIT measures the path: IKE_AUTH's answer waits for signatures and RADIUS.
            if o.exchange == "IKE_SA_INIT" and not o.retransmitted:
                self.trips.learn(at - o.sent_at, own=True)
            self.outstanding = None

    def deadline(self) -> float | None:
        return None if self.outstanding is None else self.trips.deadline(self.outstanding.sent_at)

    def overdue(self, now: float | None = None) -> bool:
        d = self.deadline()
        return d is not None and (time.monotonic() if now is None else now) >= d


# How often the watch looks at the clock: a differential answer can shorten the deadline.
WATCH_POLL = 0.02


def watch(initiation: Initiation, clock: RequestClock, abandon: Callable[[], None],
          limit: float) -> Outstanding | None:
    """Follow an attempt's log as it arrives; give up the request charon waits on once it is
    overdue (abandon() ends the attempt). Returns what was given up, or None."""
    gave_up: Outstanding | None = None
    while True:
        now = time.monotonic()
        if gave_up is None and clock.overdue(now):
            gave_up = clock.outstanding
            abandon()
        item = initiation.next(WATCH_POLL)
        if item is None:
            return gave_up
        if item is False:
            if now > limit:  # charon neither answers nor ends the command: its socket timeout will
                return gave_up
            continue
        clock.feed(item[0], item[1].get("msg", ""))


class WatchedInitiation:
    """An initiate on `session` that the suite gives up by its rule: once the request charon
    waits on is overdue, the IKE SA is terminated through a second session on `vici_path`
    (the initiate command then ends)."""

    def __init__(self, session: ViciSession, vici_path: str | Path, ike: str, child: str, timeout: float,
                 rule: GiveUpRule, trips: RoundTrips | None = None, terminator: ViciSession | None = None) -> None:
        """`trips`: samples shared with other attempts on the same path (a crowd's clients).
        `terminator`: an open session to give up through (else one is opened when needed)."""
        self.vici_path, self.ike, self.timeout = vici_path, ike, timeout
        self.terminator = terminator
        self.trips = trips if trips is not None else RoundTrips(rule)
        self.clock = RequestClock(self.trips)
        self.gave_up: Outstanding | None = None
        self.began = time.monotonic()
        self.initiation = session.start_initiate(ike, child, timeout)

    def wait(self) -> "WatchedInitiation":
        self.gave_up = watch(self.initiation, self.clock, self._abandon, limit=self.began + self.timeout + 10)
        return self

    def _abandon(self) -> None:
        if self.terminator is not None:
            self.terminator.terminate(self.ike)
            return
        with ViciSession(self.vici_path, timeout=5) as other:
            other.terminate(self.ike)

    @property
    def ok(self) -> bool:
        return self.initiation.ok and self.gave_up is None

    @property
    def error(self) -> str:
        return self.initiation.error

    @property
    def lines(self) -> list[str]:
        return [e.get("msg", "") for e in self.initiation.logs]

    def gave_up_text(self, messages: list | None = None) -> str:
        g = self.gave_up
        if g is None:
            return "no (the exchange ended by itself)"
        sent = next((m for m in messages or [] if m.direction == "sent" and m.exchange == g.exchange
                     and m.message_id == g.message_id and m.kind == "request"), None)
        retransmits = f" ({sent.retransmits} retransmits by charon meanwhile)" if sent else ""
        return (f"{g.exchange} request #{g.message_id} unanswered {self.trips.allowance():g} s after it was "
                f"sent{retransmits}; the suite terminated the attempt")

    def evidence(self, messages: list | None = None) -> dict[str, Any]:
        return {**self.trips.evidence(), "gave up": self.gave_up_text(messages)}
