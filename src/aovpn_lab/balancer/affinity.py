"""Which backend each client's IKE messages reached, read from captures on both sides of the balancer.

During a cell one capture runs on the client side (the crowd's interface, clients dialling
the VIP) and one on each backend's balancer-facing interface. Every IKE header carries the
initiator's SPI in cleartext, and no balancer rewrites it, so a client's messages are
followed by SPI, never by address: the source-translating modes rewrite addresses and
ports, and that rewriting is one of the things measured here.

From the client capture: each client's address (the source of its IKE_SA_INIT request)
and its initiator SPIs, one per attempt (a client that gives up on an attempt starts
again with a new SPI). From each backend capture: which attempts' messages arrived there
on UDP 500 and which on UDP 4500 (behind the non-ESP marker), from which source address
and port, and whether that backend answered the IKE_AUTH it received. An attempt is
*split* when the messages after IKE_SA_INIT (IKE_AUTH and later; on UDP 4500 once NAT-T
has floated, as it does behind a DNAT VIP) reached a backend other than the one that
answered its IKE_SA_INIT: the mistake of a balancer that picks a backend per port or
per flow (AOVPN-LB-AFFINITY-001). A backend that saw a client's messages come from an
address that is not the client's sits behind source translation (AOVPN-LB-NOSNAT-001).

The captures are read with the project's one capture reader and IKE decoding
(:mod:`aovpn_lab.capture.pcapfile`, :mod:`aovpn_lab.capture.packets`,
:mod:`aovpn_lab.capture.ikewire`).

    >>> a = analyse("client.pcap", {"gw1": "gw1.pcap", "gw2": "gw2.pcap"})   # doctest: +SKIP
    >>> s = summarise(a, connected={"198.18.16.2"}, established={"gw1": ["CN=c2"]})   # doctest: +SKIP
    >>> s.split_ratio, s.per_backend                                           # doctest: +SKIP
    (0.0, {'gw1': 1, 'gw2': 0})
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from ..capture.ikewire import IkeRecord, classify
from ..capture.packets import datagrams
from ..capture.pcapfile import read_frames
from ..errors import AovpnError
from ..ike.numbers import IKE_SA_INIT
from .spread import SpreadResult, evaluate

__all__ = ["AffinityAnalysis", "Attempt", "ClientRecord", "SnatFacts", "Summary", "analyse", "summarise"]

IKE_AUTH = 35  # RFC 7296 3.1 exchange type


def _add(items: list, item) -> None:
    """Append unless present: first-seen order, no repeats (retransmissions)."""
    if item not in items:
        items.append(item)


@dataclass
class Attempt:
    """One IKE SA attempt of a client (one initiator SPI) as the backends saw it."""

    spi: str                                                  # initiator SPI, hex
    first_ts: float                                           # its first IKE_SA_INIT on the client side
    udp500: list[str] = field(default_factory=list)           # backends that received it on UDP 500
    udp4500: list[str] = field(default_factory=list)          # ... on UDP 4500 (non-ESP marker)
    sa_init: list[str] = field(default_factory=list)          # backends that received its IKE_SA_INIT
    later: list[str] = field(default_factory=list)            # ... its IKE_AUTH and later requests
    auth: dict[str, bool] = field(default_factory=dict)       # backend that received IKE_AUTH -> it answered
    sources: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # backend -> (address, port) seen

    @property
    def split(self) -> bool:
        """IKE_AUTH and later went to backends other than the one(s) that got IKE_SA_INIT."""
        return bool(self.sa_init and self.later and set(self.later) != set(self.sa_init))

    @property
    def auth_answered(self) -> bool | None:
        """Did a backend that received the IKE_AUTH answer it? (None: no backend received one.)"""
        return any(self.auth.values()) if self.auth else None

    @property
    def backend(self) -> str | None:
        """The backend that would hold the SA: the one that got IKE_AUTH, else IKE_SA_INIT."""
        for names in (self.later, self.sa_init):
            if names:
                return names[-1]
        return None

    def to_json(self) -> dict:
        return {"spi": self.spi, "first_ts": self.first_ts, "udp500": self.udp500, "udp4500": self.udp4500,
                "sa_init": self.sa_init, "later": self.later, "split": self.split, "auth": self.auth,
                "auth_answered": self.auth_answered, "backend": self.backend,
                "sources": {b: [f"{a}:{p}" for a, p in s] for b, s in self.sources.items()}}


@dataclass
class ClientRecord:
    """One client: its address, its attempts in order (the last is the one that counts)."""

    address: str
    attempts: dict[str, Attempt] = field(default_factory=dict)    # by SPI hex, in order

    @property
    def spis(self) -> list[str]:
        return list(self.attempts)

    @property
    def last_spi(self) -> str:
        return self.spis[-1]

    @property
    def last(self) -> Attempt:
        return self.attempts[self.last_spi]

    def _union(self, attr: str) -> list[str]:
        out: list[str] = []
        for attempt in self.attempts.values():
            for name in getattr(attempt, attr):
                _add(out, name)
        return out

    @property
    def udp500(self) -> list[str]:
        return self._union("udp500")

    @property
    def udp4500(self) -> list[str]:
        return self._union("udp4500")

    @property
    def split(self) -> bool:
        """Any of its attempts was split across backends."""
        return any(a.split for a in self.attempts.values())

    @property
    def backend(self) -> str | None:
        return self.last.backend

    @property
    def auth_answered(self) -> bool | None:
        return self.last.auth_answered

    @property
    def sources(self) -> dict[str, list[tuple[str, int]]]:
        out: dict[str, list[tuple[str, int]]] = {}
        for attempt in self.attempts.values():
            for name, seen in attempt.sources.items():
                for src in seen:
                    _add(out.setdefault(name, []), src)
        return out

    @property
    def translated(self) -> bool:
        """A backend saw this client's messages come from an address that is not the client's."""
        return any(addr != self.address for seen in self.sources.values() for addr, _port in seen)

    def to_json(self) -> dict:
        return {"address": self.address, "spis": self.spis, "last_spi": self.last_spi,
                "udp500": self.udp500, "udp4500": self.udp4500, "split": self.split,
                "backend": self.backend, "auth_answered": self.auth_answered, "translated": self.translated,
                "attempts": [a.to_json() for a in self.attempts.values()]}


@dataclass
class AffinityAnalysis:
    """Every client seen on the client side, and what the backend captures held besides."""

    backends: tuple[str, ...]
    clients: dict[str, ClientRecord]          # by address, in order of first request
    # Initiator SPIs a backend received that no client-side request carried: the balancer's
    # own IKE health checks, or a capture that started before the client one.
    unmatched: dict[str, int]

    def to_json(self) -> dict:
        return {"backends": list(self.backends), "clients": [c.to_json() for c in self.clients.values()],
                "unmatched_spis": self.unmatched}


def _ike_records(path: str | os.PathLike) -> Iterator[IkeRecord]:
    for dgram in datagrams(read_frames(path)):
        rec = classify(dgram)
        if isinstance(rec, IkeRecord):
            yield rec


def _is_request(rec: IkeRecord) -> bool:
    return rec.from_initiator and not rec.is_response


def _clients(path, vip: str | None) -> tuple[dict[str, ClientRecord], dict[bytes, Attempt]]:
    clients: dict[str, ClientRecord] = {}
    by_spi: dict[bytes, Attempt] = {}
    for rec in _ike_records(path):
        if not (_is_request(rec) and rec.exchange == IKE_SA_INIT) or rec.spi_i in by_spi:
            continue
        if vip is not None and rec.dgram.dst != vip:
            continue
        client = clients.setdefault(rec.dgram.src, ClientRecord(rec.dgram.src))
        attempt = by_spi[rec.spi_i] = Attempt(rec.spi_i.hex(), rec.dgram.ts)
        client.attempts[attempt.spi] = attempt
    return clients, by_spi


def _backend(name: str, path, by_spi: dict[bytes, Attempt]) -> int:
    """Fill the attempts from one backend's capture; the number of unmatched initiator SPIs."""
    unmatched: set[bytes] = set()
    for rec in _ike_records(path):
        attempt = by_spi.get(rec.spi_i)
        if attempt is None:
            if _is_request(rec):
                unmatched.add(rec.spi_i)
            continue
        if rec.is_response:
            if rec.exchange == IKE_AUTH and name in attempt.auth:
                attempt.auth[name] = True
            continue
        if not rec.from_initiator:
            continue  # the backend's own requests (DPD, rekey): they say nothing about where the client went
        _add(attempt.udp4500 if rec.marker else attempt.udp500, name)
        _add(attempt.sa_init if rec.exchange == IKE_SA_INIT else attempt.later, name)
        if rec.exchange == IKE_AUTH:
            attempt.auth.setdefault(name, False)
        _add(attempt.sources.setdefault(name, []), (rec.dgram.src, rec.dgram.sport))
    return len(unmatched)


def analyse(client_pcap: str | os.PathLike, backend_pcaps: Mapping[str, str | os.PathLike], *,
            vip: str | None = None) -> AffinityAnalysis:
    """Read the client-side capture and one capture per backend (name -> path).

    ``vip`` (optional) keeps only client requests sent to that address. A damaged or
    missing capture raises :class:`~aovpn_lab.capture.errors.CaptureInputError` naming it.
    """
    if not backend_pcaps:
        raise AovpnError("no backend capture given",
                         hint="pass one capture per backend, e.g. {'gw1': 'gw1.pcap', 'gw2': 'gw2.pcap'}")
    clients, by_spi = _clients(client_pcap, vip)
    unmatched = {name: _backend(name, path, by_spi) for name, path in backend_pcaps.items()}
    return AffinityAnalysis(tuple(backend_pcaps), clients, unmatched)


@dataclass
class SnatFacts:
    """What one backend saw of the clients' source addresses."""

    sources: list[str]              # distinct source addresses of client requests
    max_clients_per_source: int     # the most clients that shared one source address
    translated_clients: int         # clients it saw from an address that is not theirs


@dataclass
class Summary:
    clients: int
    split: list[str]                        # addresses of split clients
    split_ratio: float | None               # split / clients (None: no client)
    per_backend: dict[str, int]             # clients per backend holding their last attempt (the spread)
    unassigned: list[str]                   # clients no backend capture saw
    auth_unanswered: list[str]              # clients whose IKE_AUTH the receiving backend never answered
    snat: dict[str, SnatFacts]
    translated_clients: int                 # clients some backend saw from another address
    unmatched_spis: dict[str, int]
    # given from outside (the charon SA lists); None when not given
    connected: int | None = None
    failed: list[str] | None = None         # clients seen that did not connect
    split_failed: int | None = None         # split clients among them
    connected_unseen: list[str] | None = None  # connected per the SA list, absent from the client capture
    established_per_backend: dict[str, int] | None = None

    def spread(self, **options) -> SpreadResult:
        """Is ``per_backend`` even? (:func:`aovpn_lab.balancer.spread.evaluate`; ``options`` are its own.)"""
        return evaluate(self.per_backend, **options)

    def to_json(self) -> dict:
        out = dict(vars(self))
        out["snat"] = {name: vars(facts) for name, facts in self.snat.items()}
        return out


def _snat(name: str, clients: Iterable[ClientRecord]) -> SnatFacts:
    sharing: dict[str, set[str]] = {}
    translated = 0
    for client in clients:
        seen = client.sources.get(name, [])
        for addr, _port in seen:
            sharing.setdefault(addr, set()).add(client.address)
        translated += any(addr != client.address for addr, _port in seen)
    return SnatFacts(sorted(sharing), max((len(v) for v in sharing.values()), default=0), translated)


def summarise(analysis: AffinityAnalysis, connected: Iterable[str] | None = None,
              established: Mapping[str, Iterable[str]] | None = None) -> Summary:
    """The figures of a run: splits, spread, SNAT facts.

    ``connected``: the client addresses whose IKE SA established (from the client
    charon's SA list). ``established``: per backend, the identities of the SAs
    established there (from each gateway's SA list). Both are optional.
    """
    clients = list(analysis.clients.values())
    per_backend = {name: 0 for name in analysis.backends}
    for client in clients:
        if client.backend is not None:
            per_backend[client.backend] += 1
    split = [c.address for c in clients if c.split]
    summary = Summary(
        clients=len(clients), split=split, split_ratio=len(split) / len(clients) if clients else None,
        per_backend=per_backend, unassigned=[c.address for c in clients if c.backend is None],
        auth_unanswered=[c.address for c in clients if c.auth_answered is False],
        snat={name: _snat(name, clients) for name in analysis.backends},
        translated_clients=sum(c.translated for c in clients), unmatched_spis=dict(analysis.unmatched))
    if connected is not None:
        up = set(connected)
        summary.connected = sum(c.address in up for c in clients)
        summary.failed = [c.address for c in clients if c.address not in up]
        summary.split_failed = sum(a not in up for a in split)
        summary.connected_unseen = sorted(up - set(analysis.clients))
    if established is not None:
        unknown = sorted(set(established) - set(analysis.backends))
        if unknown:
            raise AovpnError(f"established SAs given for {', '.join(unknown)}, which is not a backend "
                             f"with a capture ({', '.join(analysis.backends)})",
                             hint="name the backends as in the load_balancer.backends of the inventory")
        summary.established_per_backend = {name: len(set(established.get(name, ()))) for name in analysis.backends}
    return summary
