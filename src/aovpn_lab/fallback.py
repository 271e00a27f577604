"""The Windows client's protocol strategy (rasphone.pbk VpnStrategy) as data
(profiles/fallback.yml: each strategy's order, each IKEv2 failure's stage and error), and
`run_strategy`, which runs REAL connection attempts in the order a strategy says and
falls back the way a Windows Always On VPN client does.

The rule (docs/domain.md, "Why deployments break"): "The Windows Always On VPN client
moves on from IKEv2 to SSTP only if IKEv2 fails at the very start. If IKE_SA_INIT
succeeds and IKE_AUTH is then lost (a partial failure), it does not fall back." So an
IKEv2 failure has a *stage*:

- ``initial``: IKE_SA_INIT never completed - no answer to it at all (``udp-500-blocked``,
  or ``no-response`` with no IKE_SA_INIT response in the log), or the gateway refused it
  (``no-proposal-chosen``: IKE_SA_INIT is answered with an error notify, so it is not
  "IKE_SA_INIT succeeds"; no IKE SA exists - this placement is our reading of the dichotomy in
  docs/domain.md, not an observed Windows trace).
- ``partial``: IKE_SA_INIT completed, then IKE_AUTH was lost or refused
  (``udp-4500-blocked``, ``ip-fragments-dropped``, ``ike-fragments-dropped``,
  ``auth-failed``, or ``no-response`` after an IKE_SA_INIT response).

``fallback_on="initial-failure"`` is the Windows client: only an initial failure moves on
to SSTP. ``fallback_on="any-failure"`` is a client that falls back on every IKEv2
failure (e.g. an IKE_AUTH timeout) - what users would have needed on such networks.
A failed SSTP attempt always moves on to the next protocol (SstpFirst, Default):
docs/domain.md states the "initial only" restriction for IKEv2 -> SSTP alone.

Attempts are callables returning a probe result (``ike.probe.IkeProbeResult``,
``sstp.probe.SstpProbeResult``, their ``to_json()`` dicts, or any object with
``connected``, ``cause``, ``elapsed_ms``), so unit tests replay recorded results and the
conformance suite passes real probes:

    >>> from aovpn_lab.ike.probe import IkeProbeResult
    >>> from aovpn_lab.sstp.probe import SstpProbeResult
    >>> ike = lambda: IkeProbeResult(False, "udp-500-blocked", 3004, "203.0.113.10", "aovpn-recommended")
    >>> sstp = lambda: SstpProbeResult(True, "none", "203.0.113.10", 443, 1310, "mschapv2")
    >>> out = run_strategy(14, ike, sstp)
    >>> out.observed, out.time_to_connect_ms, [a.protocol for a in out.attempts]
    ('connected-over-sstp', 4314, ['ikev2', 'sstp'])
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .errors import AovpnError

PROTOCOLS = ("ikev2", "sstp")
LABEL = {"ikev2": "IKEv2", "sstp": "SSTP"}
FALLBACK_MODES = ("initial-failure", "any-failure")
INITIAL, PARTIAL = "initial", "partial"


class VpnStrategy(IntEnum):
    """rasphone.pbk VpnStrategy values an Always On VPN profile uses (docs/domain.md, "Windows client protocol
    strategy")."""
    Default = 0
    SstpOnly = 5
    SstpFirst = 6
    Ikev2Only = 7
    Ikev2First = 8
    Ikev2Sstp = 14
    ProtocolList = 15

    @classmethod
    def parse(cls, value: int | str | VpnStrategy) -> VpnStrategy:
        """14, "14", "Ikev2Sstp" or "ikev2sstp" -> VpnStrategy.Ikev2Sstp."""
        if isinstance(value, str):
            text = value.strip()
            if text.lstrip("-").isdigit():
                value = int(text)
            else:
                by_name = {m.name.lower(): m for m in cls}
                try:
                    return by_name[text.lower().replace("-", "").replace("_", "")]
                except KeyError:
                    raise ValueError(f"unknown VpnStrategy {value!r}; use one of "
                                     f"{', '.join(f'{m.value} {m.name}' for m in cls)}") from None
        try:
            return cls(int(value))
        except ValueError:
            raise ValueError(f"VpnStrategy {value} is not modelled (PPTP/L2TP strategies are out of scope); use one "
                             f"of {', '.join(f'{m.value} {m.name}' for m in cls)}") from None


STRATEGY_FILE = paths.PROFILES / "fallback.yml"


@dataclass(frozen=True)
class StrategyInfo:
    order: tuple[str, ...]   # protocols in the order the client tries them ((): from protocol_list)
    note: str


def _load(path: Path = STRATEGY_FILE) -> tuple[dict[VpnStrategy, StrategyInfo], dict[str, dict[str, Any]]]:
    """The strategies and the IKEv2 failure causes, validated: errors name the file, the key and the fix."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    strategies: dict[VpnStrategy, StrategyInfo] = {}
    for name, s in (data.get("strategies") or {}).items():
        if name not in VpnStrategy.__members__:
            raise AovpnError(f"{path}: strategies.{name}: not a VpnStrategy",
                             hint=f"use one of {', '.join(VpnStrategy.__members__)}")
        order = tuple((s or {}).get("order") or ())
        if any(p not in PROTOCOLS for p in order) or len(set(order)) != len(order):
            raise AovpnError(f"{path}: strategies.{name}.order: {list(order)}",
                             hint=f"each of {', '.join(PROTOCOLS)} at most once")
        strategies[VpnStrategy[name]] = StrategyInfo(order, str((s or {}).get("note") or ""))
    missing = [m.name for m in VpnStrategy if m not in strategies]
    if missing:
        raise AovpnError(f"{path}: strategies.{missing[0]}: missing", hint="describe every VpnStrategy")
    failures: dict[str, dict[str, Any]] = {}
    for i, f in enumerate(data.get("ikev2_failures") or []):
        if not isinstance(f, dict) or not f.get("cause") or f.get("stage") not in (INITIAL, PARTIAL, None) \
                or not isinstance(f.get("windows_error", 0), int):
            raise AovpnError(f"{path}: ikev2_failures[{i}]: expected {{cause, stage, windows_error, text}}",
                             hint=f"stage is {INITIAL}, {PARTIAL} or left out; windows_error a number or left out")
        failures[str(f["cause"])] = f
    return strategies, failures


STRATEGIES, _FAILURES = _load()

# What a failed IKEv2 attempt's cause means for fallback (cause -> stage). `no-response`
# is decided from the messages (was IKE_SA_INIT answered?).
IKEV2_STAGE: dict[str, str] = {c: f["stage"] for c, f in _FAILURES.items() if f.get("stage")}
IKEV2_FAILURE_TEXT: dict[str, str] = {c: f["text"] for c, f in _FAILURES.items() if f.get("text")}
# The error a Windows client shows for an IKEv2 failure; absent: not stated in docs/domain.md.
WINDOWS_ERROR: dict[str, int] = {c: f["windows_error"] for c, f in _FAILURES.items() if f.get("windows_error")}


def protocol_order(strategy: int | str | VpnStrategy, protocol_list: Sequence[str] | None = None
                   ) -> tuple[str, ...]:
    """The protocols a strategy tries, in order. ProtocolList (15) needs `protocol_list`."""
    s = VpnStrategy.parse(strategy)
    if s is VpnStrategy.ProtocolList:
        if not protocol_list:
            raise ValueError("VpnStrategy 15 ProtocolList needs protocol_list, e.g. ['ikev2', 'sstp']")
        order = tuple(p.lower() for p in protocol_list)
        unknown = [p for p in order if p not in PROTOCOLS]
        if unknown or len(set(order)) != len(order):
            raise ValueError(f"protocol_list {list(protocol_list)}: each of {', '.join(PROTOCOLS)} at most once")
        return order
    if protocol_list is not None:
        raise ValueError(f"protocol_list only applies to VpnStrategy 15 ProtocolList, not {s.value} {s.name}")
    return STRATEGIES[s].order


@dataclass
class Attempt:
    """One real connection attempt as the strategy saw it."""
    protocol: str
    connected: bool
    cause: str
    elapsed_ms: int              # the attempt itself, as its probe measured it (what a user waits)
    wall_ms: int                 # around the callable: adds diagnosis (differential test), setup, teardown
    stage: str | None = None     # IKEv2 failure: initial | partial
    detail: str = ""
    windows_error: int | None = None
    sizes: dict[str, Any] = field(default_factory=dict)
    retransmits: dict[str, int] = field(default_factory=dict)
    counterfactual: bool = False  # not part of the strategy: tried to show what the skipped protocol would do
    result: Any = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "result"}


@dataclass
class StrategyOutcome:
    strategy: VpnStrategy
    fallback_on: str
    order: tuple[str, ...]
    attempts: list[Attempt]
    connected_protocol: str | None
    time_to_connect_ms: int | None   # sum of the strategy's attempts' elapsed_ms up to the one that connected
    total_ms: int                    # wall clock of the whole run, diagnosis and counterfactuals included
    fell_back: bool
    decision: str                    # why the client did or did not move on
    finding: str
    skipped: tuple[str, ...] = ()    # protocols of the order that were never tried
    strategy_after: VpnStrategy | None = None  # Windows rewrites VpnStrategy after a fallback (docs/domain.md)

    @property
    def connected(self) -> bool:
        return self.connected_protocol is not None

    @property
    def observed(self) -> str:
        """One word for a report cell: connected-over-sstp, ikev2-failed-no-fallback, all-failed, ..."""
        if self.connected_protocol:
            return f"connected-over-{self.connected_protocol}"
        tried = [a for a in self.attempts if not a.counterfactual]
        if self.skipped:
            return f"{tried[-1].protocol}-failed-no-fallback"
        return "all-failed" if len(tried) > 1 else f"{tried[-1].protocol}-failed"

    def attempt(self, protocol: str, counterfactual: bool = False) -> Attempt | None:
        return next((a for a in self.attempts if a.protocol == protocol and a.counterfactual == counterfactual),
                    None)

    def to_json(self) -> dict[str, Any]:
        return {"strategy": f"{self.strategy.value} {self.strategy.name}", "fallback_on": self.fallback_on,
                "order": list(self.order), "observed": self.observed, "connected_protocol": self.connected_protocol,
                "time_to_connect_ms": self.time_to_connect_ms, "total_ms": self.total_ms,
                "fell_back": self.fell_back, "decision": self.decision, "finding": self.finding,
                "skipped": list(self.skipped),
                "strategy_after": (f"{self.strategy_after.value} {self.strategy_after.name}"
                                   if self.strategy_after is not None else None),
                "attempts": [a.to_json() for a in self.attempts]}


# -- reading probe results --------------------------------------------------------

def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _messages(result: Any) -> list[Any]:
    return list(_get(result, "messages") or [])


def _completes_ike_sa_init(m: Any) -> bool:
    """A received IKE_SA_INIT response that accepts (carries SA): not a COOKIE, INVALID_KE or
    NO_PROPOSAL_CHOSEN notify alone. Unknown payloads (older records) count as accepting."""
    if not (_get(m, "exchange") == "IKE_SA_INIT" and _get(m, "kind") == "response"
            and _get(m, "direction") == "received"):
        return False
    payloads = _get(m, "payloads") or []
    return not payloads or "SA" in payloads


def ike_sa_init_answered(result: Any) -> bool | None:
    """Did IKE_SA_INIT complete (the gateway accepted it)? None: no messages to tell."""
    msgs = _messages(result)
    if not msgs:
        return None
    return any(_completes_ike_sa_init(m) for m in msgs)


def ikev2_failure_stage(result: Any) -> str:
    """`initial` or `partial` for a failed IKEv2 attempt (see the module docstring)."""
    cause = str(_get(result, "cause", "no-response"))
    if cause in IKEV2_STAGE:
        return IKEV2_STAGE[cause]
    # no-response (or an unknown cause): decided by whether IKE_SA_INIT completed. With no
    # messages to tell, silence means nothing was ever answered.
    return PARTIAL if ike_sa_init_answered(result) or _get(result, "ike_sa") else INITIAL


def _ike_sizes(result: Any) -> tuple[dict[str, Any], dict[str, int]]:
    sizes: dict[str, Any] = {}
    retransmits: dict[str, int] = {}
    for m in _messages(result):
        key = f"{_get(m, 'exchange')}_{_get(m, 'kind')}"
        if _get(m, "exchange") == "IKE_SA_INIT":
            sizes[key] = _get(m, "size")   # the last try: after a COOKIE or INVALID_KE round, the one that counts
        else:
            sizes.setdefault(key, _get(m, "size"))   # the first (EAP rounds follow the big first IKE_AUTH)
        if _get(m, "retransmits"):
            retransmits[key] = retransmits.get(key, 0) + int(_get(m, "retransmits"))
    for k in ("IKE_SA_INIT_request", "IKE_SA_INIT_response", "IKE_AUTH_request", "IKE_AUTH_response"):
        sizes.setdefault(k, None)
    return sizes, retransmits


def _attempt(protocol: str, result: Any, wall_ms: int, counterfactual: bool = False) -> Attempt:
    connected = bool(_get(result, "connected", False))
    cause = "none" if connected else str(_get(result, "cause", "no-response") or "no-response")
    a = Attempt(protocol=protocol, connected=connected, cause=cause,
                elapsed_ms=int(_get(result, "elapsed_ms", wall_ms) or 0), wall_ms=wall_ms,
                detail=str(_get(result, "detail", "") or ""), counterfactual=counterfactual, result=result)
    if protocol == "ikev2":
        a.sizes, a.retransmits = _ike_sizes(result)
        if not connected:
            a.stage = ikev2_failure_stage(result)
            a.windows_error = WINDOWS_ERROR.get(cause)
    else:
        phases = _get(result, "phases") or []
        a.sizes = {"tls": f"{_get(result, 'tls_version', '') or ''} {_get(result, 'tls_cipher', '') or ''}".strip(),
                   "phases_ms": {str(_get(p, "name")): _get(p, "ms") for p in phases}}
        if _get(result, "failed_phase"):
            a.sizes["failed_phase"] = _get(result, "failed_phase")
    return a


# -- the strategy -----------------------------------------------------------------

def moves_on(failed: Attempt, fallback_on: str) -> tuple[bool, str]:
    """Whether a client moves on to the next protocol after `failed`, and why."""
    if failed.protocol == "sstp":
        return True, f"SSTP failed ({failed.cause}): the client tries the next protocol"
    what = IKEV2_FAILURE_TEXT.get(failed.cause) or (
        "IKE_SA_INIT was answered, then IKE_AUTH got no answer" if failed.stage == PARTIAL
        else "no answer to IKE_SA_INIT")
    if failed.stage == INITIAL:
        return True, f"IKEv2 failed initially ({failed.cause}: {what}), which triggers the fallback"
    if fallback_on == "any-failure":
        return True, (f"IKEv2 failed after IKE_SA_INIT was answered ({failed.cause}: {what}); this client falls "
                      "back on any IKEv2 failure")
    return False, (f"IKEv2 failed partially ({failed.cause}: {what}) - IKE_SA_INIT was answered, so IKEv2 did not "
                   "fail initially and a Windows client does not fall back")


def run_strategy(strategy: int | str | VpnStrategy, ikev2_attempt: Callable[[], Any] | None,
                 sstp_attempt: Callable[[], Any] | None, *, fallback_on: str = "initial-failure",
                 protocol_list: Sequence[str] | None = None, try_skipped: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> StrategyOutcome:
    """Run the attempts in the order `strategy` says, one after the other, until one connects
    or the fallback rule stops. `try_skipped`: afterwards also try each protocol the client
    skipped (marked counterfactual; it changes nothing in the outcome but the finding: "users
    see error 809 although SSTP works here")."""
    s = VpnStrategy.parse(strategy)
    if fallback_on not in FALLBACK_MODES:
        raise ValueError(f"fallback_on must be one of {', '.join(FALLBACK_MODES)}, not {fallback_on!r}")
    order = protocol_order(s, protocol_list)
    callables = {"ikev2": ikev2_attempt, "sstp": sstp_attempt}
    missing = [p for p in order if callables[p] is None]
    if missing:
        raise ValueError(f"VpnStrategy {s.value} {s.name} tries {', '.join(order)}: pass an attempt for "
                         f"{', '.join(missing)}")

    def run(protocol: str, counterfactual: bool = False) -> Attempt:
        began = clock()
        result = callables[protocol]()
        return _attempt(protocol, result, round((clock() - began) * 1000), counterfactual)

    began = clock()
    attempts: list[Attempt] = []
    decisions: list[str] = []
    connected: str | None = None
    stopped_at = len(order)
    for i, protocol in enumerate(order):
        a = run(protocol)
        attempts.append(a)
        if a.connected:
            connected = protocol
            decisions.append(f"{LABEL[protocol]} connected")
            stopped_at = i + 1
            break
        if i == len(order) - 1:
            decisions.append(f"{LABEL[protocol]} failed ({a.cause}) and strategy {s.value} {s.name} has no "
                             "further protocol")
            break
        go, why = moves_on(a, fallback_on)
        decisions.append(why)
        if not go:
            stopped_at = i + 1
            break
    skipped = order[stopped_at:] if connected is None else ()
    if try_skipped:
        attempts += [run(p, counterfactual=True) for p in skipped]
    real = [a for a in attempts if not a.counterfactual]
    fell_back = len(real) > 1
    ttc = sum(a.elapsed_ms for a in real) if connected else None
    after = None
    if fell_back and connected == "sstp" and real[0].protocol == "ikev2" and fallback_on == "initial-failure":
        after = VpnStrategy.SstpFirst
    outcome = StrategyOutcome(strategy=s, fallback_on=fallback_on, order=order, attempts=attempts,
                              connected_protocol=connected, time_to_connect_ms=ttc,
                              total_ms=round((clock() - began) * 1000), fell_back=fell_back,
                              decision="; ".join(decisions), finding="", skipped=tuple(skipped),
                              strategy_after=after)
    outcome.finding = finding(outcome)
    return outcome


def finding(o: StrategyOutcome) -> str:
    """One paragraph for the report: what the user experiences and why."""
    real = [a for a in o.attempts if not a.counterfactual]
    first, last = real[0], real[-1]
    name = f"VpnStrategy {o.strategy.value} {o.strategy.name}"
    if o.connected and not o.fell_back:
        rest = [LABEL[p] for p in o.order if p != first.protocol]
        return (f"{LABEL[first.protocol]} connected in {first.elapsed_ms} ms ({name})"
                + (f"; {', '.join(rest)} not needed" if rest else ""))
    if o.connected:
        steps = " + ".join(f"{LABEL[a.protocol]} {a.elapsed_ms} ms" for a in real)
        head = (f"{LABEL[first.protocol]} failed ({first.cause}"
                + (f", {first.stage} failure" if first.stage else "") + ")")
        if first.protocol == "ikev2" and first.stage == PARTIAL:
            text = (f"IKE_SA_INIT was answered, then {IKEV2_FAILURE_TEXT.get(first.cause, 'IKE_AUTH got no answer')}"
                    f". A client that falls back on any IKEv2 failure moves on to SSTP, which connected: "
                    f"time to connect {o.time_to_connect_ms} ms ({steps}). A Windows client (fallback only on an "
                    "initial failure) would have stopped here"
                    + (f" with error {first.windows_error}" if first.windows_error else ""))
        else:
            text = (f"{head}; the client fell back to {LABEL[last.protocol]}, which connected: time to connect "
                    f"{o.time_to_connect_ms} ms ({steps})")
        if o.strategy_after is not None:
            text += (f". Windows then rewrites VpnStrategy (to {o.strategy_after.value} {o.strategy_after.name}), "
                     "so later connections start with SSTP")
        return text
    if o.skipped and last.protocol == "ikev2":
        what = IKEV2_FAILURE_TEXT.get(last.cause, "IKE_AUTH got no answer")
        error = f"users see error {last.windows_error}" if last.windows_error else "the connection fails"
        text = (f"{what}. IKE_SA_INIT was answered, so IKEv2 did not fail initially and a Windows client does not "
                f"fall back to {', '.join(LABEL[p] for p in o.skipped)} ({name}); {error} after "
                f"{last.elapsed_ms} ms")
        tried = [a for a in o.attempts if a.counterfactual]
        ok = [a for a in tried if a.connected]
        if ok:
            text += (f" although {' and '.join(LABEL[a.protocol] for a in ok)} works on this network (connected in "
                     f"{', '.join(str(a.elapsed_ms) for a in ok)} ms when tried)")
        elif tried:
            text += "; " + ", ".join(f"{LABEL[a.protocol]}, tried anyway, failed too ({a.cause})" for a in tried)
        return text
    causes = ", ".join(f"{LABEL[a.protocol]} {a.cause}" for a in real)
    if len(real) > 1:
        return f"no protocol connected ({causes}): every protocol of {name} failed"
    return f"{LABEL[last.protocol]} failed ({last.cause}) and {name} has no fallback"


def predict(strategy: int | str | VpnStrategy, causes: Mapping[str, str], *, fallback_on: str = "initial-failure",
            protocol_list: Sequence[str] | None = None, ike_sa_init_answered: bool | None = None) -> StrategyOutcome:
    """What `run_strategy` does when each protocol's attempt ends with `causes[protocol]`
    ("none" = connects) - the same rule, applied to predicted causes (no network)."""
    def stub(protocol: str) -> Callable[[], Any]:
        cause = causes.get(protocol, "none")

        def attempt() -> dict[str, Any]:
            r: dict[str, Any] = {"connected": cause in ("none", "connected"), "cause": cause, "elapsed_ms": 0}
            if protocol == "ikev2" and ike_sa_init_answered is not None:
                r["messages"] = [{"exchange": "IKE_SA_INIT", "kind": "request", "direction": "sent"}] + (
                    [{"exchange": "IKE_SA_INIT", "kind": "response", "direction": "received"}]
                    if ike_sa_init_answered else [])
            return r
        return attempt
    return run_strategy(strategy, stub("ikev2"), stub("sstp"), fallback_on=fallback_on,
                        protocol_list=protocol_list, clock=lambda: 0.0)
