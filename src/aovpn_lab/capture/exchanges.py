"""IKE messages and exchanges of one IKE SA, matched across the client and the server capture.

Messages are matched by (exchange, message ID, request/response, who started the
exchange), never by addresses; unencrypted messages sent again with different content
(IKE_SA_INIT after COOKIE or INVALID_KE) become rounds of their own, told apart by
content. See :mod:`aovpn_lab.capture.diagnose` for the whole method.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .ikewire import IkeRecord, exchange_name, notify_name
from .packets import Datagram

__all__ = ["DIRECTIONS", "I2R", "R2I", "Exchange", "Message", "Observed", "SaView", "build_exchanges"]

I2R, R2I = "initiator-to-responder", "responder-to-initiator"
DIRECTIONS = (I2R, R2I)
SA_INIT, AUTH, INFORMATIONAL, INTERMEDIATE = 34, 35, 37, 43


@dataclass
class Observed:
    """All copies of one IKE message in one capture."""

    records: list[IkeRecord] = field(default_factory=list)
    orphans: list[Datagram] = field(default_factory=list)  # headless fragment groups matched by IP ID

    @property
    def first_ts(self) -> float | None:
        return min((r.dgram.ts for r in self.records), default=None)

    @property
    def skf_total(self) -> int:
        return max((r.skf[1] for r in self.records if r.skf), default=0)

    def _by_fragment(self) -> dict[int, list[IkeRecord]]:
        out: dict[int, list[IkeRecord]] = defaultdict(list)
        for r in self.records:
            out[r.skf[0] if r.skf else 0].append(r)
        return out

    @property
    def transmissions(self) -> int:
        if not self.records:
            return 0
        return max(len(v) for v in self._by_fragment().values())

    @property
    def complete_copies(self) -> int:
        if not self.records:
            return 0
        total = self.skf_total
        groups = self._by_fragment()
        if total:
            return min(sum(1 for r in groups.get(i, []) if r.dgram.complete) for i in range(1, total + 1))
        return sum(1 for r in self.records if r.dgram.complete)

    @property
    def fragment_numbers_complete(self) -> int:
        return sum(1 for _, v in self._by_fragment().items() if any(r.dgram.complete for r in v))

    @property
    def ike_size(self) -> int:
        if not self.records:
            return 0
        if self.skf_total:
            return sum(v[0].length for k, v in self._by_fragment().items())
        return self.records[0].length

    @property
    def ip_fragmented(self) -> bool:
        return any(r.dgram.fragmented for r in self.records) or bool(self.orphans)

    def metrics(self) -> dict[str, Any]:
        dgs = [r.dgram for r in self.records] + self.orphans
        frags = sum(d.packets for d in dgs if d.fragmented)
        out = {
            "messages": self.complete_copies, "transmissions": self.transmissions,
            "retransmits": max(0, self.transmissions - 1), "datagrams": len(self.records),
            "packets": sum(d.packets for d in dgs), "ip_fragments": frags,
            "bytes": sum(d.ip_bytes for d in dgs), "largest_ip_packet": max((d.largest for d in dgs), default=0),
            "ike_size": self.ike_size, "ike_fragments": self.skf_total,
        }
        if self.skf_total:
            out["ike_fragments_complete"] = self.fragment_numbers_complete
        if self.records:
            r = self.records[0]
            out["addresses"] = f"{r.dgram.src}:{r.dgram.sport} -> {r.dgram.dst}:{r.dgram.dport}"
            notifies = sorted({n for rec in self.records for n in rec.notifies})
            if notifies:
                out["notifies"] = [notify_name(n) for n in notifies]
        return out


@dataclass
class Message:
    """One IKE message: what its sender's capture shows and what the other capture shows."""

    exchange: int
    msg_id: int
    response: bool
    by_initiator: bool = True      # the exchange was started by the IKE initiator
    client: Observed = field(default_factory=Observed)
    server: Observed = field(default_factory=Observed)

    @property
    def direction(self) -> str:
        return I2R if self.by_initiator != self.response else R2I

    @property
    def sent(self) -> Observed:
        return self.client if self.direction == I2R else self.server

    @property
    def seen(self) -> Observed:
        return self.server if self.direction == I2R else self.client

    @property
    def was_sent(self) -> bool:
        return bool(self.sent.records)

    @property
    def delivered(self) -> bool:
        return self.seen.complete_copies > 0

    @property
    def any_copy(self) -> IkeRecord | None:
        recs = self.sent.records or self.seen.records
        return recs[0] if recs else None

    @property
    def port(self) -> int | None:
        r = self.any_copy
        return r.responder_port if r else None

    @property
    def notifies(self) -> list[int]:
        out: list[int] = []
        for r in self.client.records + self.server.records:
            for n in r.notifies:
                if n not in out:
                    out.append(n)
        return out

    @property
    def encrypted(self) -> bool:
        r = self.any_copy
        return bool(r and r.encrypted)

    @property
    def size(self) -> int:
        return self.sent.ike_size or self.seen.ike_size

    @property
    def ip_fragmented(self) -> bool:
        return self.sent.ip_fragmented or self.seen.ip_fragmented

    def to_json(self) -> dict[str, Any]:
        sender, receiver = ("client", "server") if self.direction == I2R else ("server", "client")
        return {
            "exchange": exchange_name(self.exchange), "message_id": self.msg_id,
            "message": "response" if self.response else "request",
            "started_by": "initiator" if self.by_initiator else "responder", "direction": self.direction,
            "port": self.port, "sent": dict(self.sent.metrics(), capture=sender),
            "seen": dict(self.seen.metrics(), capture=receiver), "delivered": self.delivered,
        }


@dataclass
class Exchange:
    exchange: int
    msg_id: int
    request: Message
    response: Message
    by_initiator: bool = True

    @property
    def name(self) -> str:
        return exchange_name(self.exchange)


@dataclass
class SaView:
    """One IKE SA (initiator SPI) in both captures."""

    spi_i: bytes
    client: list[IkeRecord]
    server: list[IkeRecord]
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def spi_r(self) -> bytes:
        for r in self.client + self.server:
            if r.spi_r != b"\x00" * 8:
                return r.spi_r
        return b"\x00" * 8

    @property
    def responder_spis(self) -> list[str]:
        return sorted({r.spi_r.hex() for r in self.client + self.server if r.spi_r != b"\x00" * 8})

    @property
    def start(self) -> float:
        recs = self.client or self.server
        return min(r.dgram.ts for r in recs)

    @property
    def messages(self) -> list[Message]:
        return [m for ex in self.exchanges for m in (ex.request, ex.response)]


def _variant(r: IkeRecord) -> bytes:
    return b"" if r.encrypted else r.fingerprint


def _by_initiator(r: IkeRecord) -> bool:
    """Was this message's exchange started by the IKE initiator? (each end numbers its own requests)"""
    return r.from_initiator != r.is_response


def build_exchanges(client: list[IkeRecord], server: list[IkeRecord],
                     orphans: dict[str, list[Datagram]]) -> list[Exchange]:
    """Group both captures' records into exchanges; unencrypted retries become rounds."""
    groups: dict[tuple[int, int, bool, bool], dict[str, dict[bytes, list[IkeRecord]]]] = {}
    for side, recs in (("client", client), ("server", server)):
        for r in recs:
            key = (r.exchange, r.msg_id, r.is_response, _by_initiator(r))
            g = groups.setdefault(key, {"client": {}, "server": {}})
            g[side].setdefault(_variant(r), []).append(r)
    messages: dict[tuple[int, int, bool, bool], list[Message]] = {}
    for key, g in groups.items():
        exch, mid, resp, by_init = key
        c, s = g["client"], g["server"]
        msgs: list[Message] = []
        if len(c) <= 1 and len(s) <= 1:  # one version each: match even if the bytes differ (snap length)
            m = Message(exch, mid, resp, by_init)
            m.client.records = next(iter(c.values()), [])
            m.server.records = next(iter(s.values()), [])
            msgs.append(m)
        else:
            for v in list(dict.fromkeys(list(c) + list(s))):
                m = Message(exch, mid, resp, by_init)
                m.client.records, m.server.records = c.get(v, []), s.get(v, [])
                msgs.append(m)
        for m in msgs:  # headless fragment groups on the receiving side, by IP identification
            sent_ids = {r.dgram.ident for r in m.sent.records if r.dgram.fragmented}
            if sent_ids:
                m.seen.orphans = [o for o in orphans["server" if m.direction == I2R else "client"]
                                  if o.ident in sent_ids]
        msgs.sort(key=lambda m: min(t for t in (m.client.first_ts, m.server.first_ts) if t is not None)
                  if (m.client.records or m.server.records) else 0)
        messages[key] = msgs

    exchanges: list[Exchange] = []
    for (exch, mid, by_init) in sorted({(k[0], k[1], k[3]) for k in messages},
                                       key=lambda k: (not k[2], k[1], k[0])):
        reqs = messages.get((exch, mid, False, by_init), [])
        resps = list(messages.get((exch, mid, True, by_init), []))
        if not reqs:
            reqs = [Message(exch, mid, False, by_init)]
        paired: list[list[Message]] = [[] for _ in reqs]
        for resp in resps:  # a response belongs to the last request round sent before it
            idx = 0
            for side in ("server", "client"):
                rt = getattr(resp, side).first_ts
                times = [getattr(q, side).first_ts for q in reqs]
                if rt is not None and any(t is not None for t in times):
                    idx = max((i for i, t in enumerate(times) if t is not None and t <= rt), default=0)
                    break
            paired[idx].append(resp)
        for q, rs in zip(reqs, paired):
            resp = rs[-1] if rs else Message(exch, mid, True, by_init)
            for extra in rs[:-1]:  # two different answers to one request: keep both copies
                resp.client.records = extra.client.records + resp.client.records
                resp.server.records = extra.server.records + resp.server.records
            exchanges.append(Exchange(exch, mid, q, resp, by_init))
    exchanges.sort(key=_when)
    return exchanges


def _when(ex: Exchange) -> float:
    """Ordering key: the client's clock when it saw the exchange, else the server's."""
    for side in ("client", "server"):
        times = [t for m in (ex.request, ex.response) if (t := getattr(m, side).first_ts) is not None]
        if times:
            return min(times)
    return float("inf")
