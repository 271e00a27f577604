"""Why an IKEv2 connection failed, from two captures taken at the same time.

    >>> d = diagnose("client.pcap", "server.pcap")                    # doctest: +SKIP
    >>> d.established, d.cause, d.direction, d.uses_ip_fragmentation  # doctest: +SKIP
    (False, 'ip-fragments-dropped', 'initiator-to-responder', True)
    >>> print(d.summary())                                            # doctest: +SKIP

This is the diagnosis of Hicks' "Always On VPN IKEv2 Features and Limitations"
(docs/domain.md, "Why deployments break") done by a program: capture on the client and
on the server at the same time, then compare what one end sent with what the other end
saw.

How the captures are matched
    Only by IKE SPIs, never by addresses or ports (there may be NAT between the two
    capture points): an IKE SA is the initiator SPI; messages are (exchange, message ID,
    request/response); responder SPIs are reported. Unencrypted messages sent again with
    different content (IKE_SA_INIT after COOKIE or INVALID_KE) are told apart by content;
    identical copies are retransmissions. IP fragments are reassembled here (the
    capture's own sizes are kept: packets, fragments, bytes, the largest IP packet);
    fragments whose first fragment never arrived are matched to the sender's datagrams
    by IP identification. RFC 7383 fragments (SKF payload) are counted by fragment
    number/total. The client capture is taken to be the IKE initiator's (the Always On
    VPN client always initiates); direction comes from the IKE header's Initiator flag.

Which IKE SA is diagnosed
    The last SA the client started that was established, else the last SA it started.
    The others are listed in ``evidence.other_sas`` with their own cause.

The decision, exchange by exchange (IKE_SA_INIT rounds, then IKE_AUTH by message ID)
    1. A request (initiator-to-responder) or response (responder-to-initiator) that the
       sender's capture shows and of which no complete copy is in the other capture is
       *lost* in that direction:

       - an RFC 7383 fragmented message: ``ip-fragments-dropped`` if its SKF datagrams
         were themselves IP-fragmented and fragments are missing; otherwise
         ``ike-fragments-dropped`` when some of its fragments arrived or other
         datagrams to the same UDP port got through (the fragments are too big for the
         path, or filtered), else ``udp-<port>-blocked`` (with ``ike-fragments-dropped``
         as an alternative);
       - an IP-fragmented message: ``ip-fragments-dropped``. Certain when some of its
         fragments arrived or unfragmented datagrams to the same port got through. When
         nothing at all ever arrived on that port (typical: the large IKE_AUTH is the
         first packet to UDP 4500), the captures cannot tell "fragments dropped" from
         "port blocked": the cause is still ``ip-fragments-dropped`` and
         ``alternatives`` names ``udp-<port>-blocked``;
       - an unfragmented message: ``udp-500-blocked`` / ``udp-4500-blocked`` by the
         responder's port (500 or 4500) of that message.
    2. A request the responder received completely and never answered: ``no-response``
       (direction null: nothing was lost on the path).
    3. An IKE_SA_INIT response carrying NO_PROPOSAL_CHOSEN (unencrypted):
       ``no-proposal-chosen``; INVALID_KE_PAYLOAD not followed by a new IKE_SA_INIT: the
       same (the DH group does not match).
    4. IKE_AUTH cannot be decrypted, so authentication is judged by size and by what
       follows:

       - the last IKE_AUTH response is *error-sized* (at most
         :data:`ERROR_SIZED_MAX` = 128 bytes of IKE message: header, SK header, IV, one
         notify, ICV; strongSwan's N(AUTHENTICATION_FAILED) is 80 bytes, a successful
         answer carries at least IDr/AUTH/SA/TS and is well above 200) and the initiator
         does not continue IKE_AUTH: ``auth-failed`` (the responder refused the client:
         untrusted certificate, wrong identity, EAP failure);
       - the initiator sends an INFORMATIONAL request within
         :data:`ABANDON_WINDOW` (2 s) of the last IKE_AUTH response and no ESP follows:
         ``auth-failed`` (the client refused the server: untrusted/expired certificate,
         name mismatch).
    5. Otherwise IKE_AUTH completed: ``established`` and cause ``none``. ESP traffic on
       the SA's address/port pair after the last IKE_AUTH response also counts as
       established (it overrides 4).

Result fields
    ``established``, ``cause`` (one of :data:`CAUSES`), ``direction`` (where the loss
    was seen, else None), ``uses_ip_fragmentation`` (some IKE message of the SA was
    IP-fragmented in either capture, delivered or not: an established SA with this set
    breaks behind any fragment-dropping firewall), ``uses_ike_fragmentation`` (RFC 7383
    SKF payloads seen), ``reason``, ``alternatives`` (causes the captures cannot rule
    out), ``advice``, ``auth_failure`` (``responder-refused`` / ``initiator-abandoned``),
    and ``evidence``: per message and direction what the sender's capture shows vs the
    other one (messages, transmissions/retransmits, datagrams, packets, IP fragments,
    bytes, largest IP packet, IKE size, RFC 7383 fragments), the IKE_SA_INIT/IKE_AUTH
    sizes (for RFC 7383 messages: the sum of the fragments' IKE lengths), endpoints as
    seen in each capture (NAT), ESP counts, RFC 7383 advertisement, other SAs.

Limits (honest ones)
    - Sizes are heuristics: an implementation that adds several notifies to an error
      answer can exceed 128 bytes (then 4 misses it); a response that is a successful
      but tiny EAP message that ends the exchange would be taken as a failure. A client
      that disconnects within 2 s of connecting, without sending any traffic, looks like
      the client refused the server. A child SA that failed inside a successful
      IKE_AUTH (TS_UNACCEPTABLE, NO_PROPOSAL_CHOSEN for ESP) is encrypted and is reported
      as established.
    - A message lost with nothing else ever reaching that port is ambiguous (see 1).
    - Captures must be complete: a capture started late, stopped early, or with kernel
      drops reads as loss. Capture on one interface (``-i any`` on a router sees each
      packet twice). Only IKEv2 on UDP 500/4500 (plus native ESP) is recognised.
"""
from __future__ import annotations

import os
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ike.probe import CAUSES
from . import ikewire
from .errors import CaptureInputError, CaptureMismatchError
from .ikewire import EspRecord, IkeRecord, classify, exchange_name, notify_name
from .packets import PROTO_UDP, Datagram, datagrams
from .pcapfile import CaptureInfo, read_frames

__all__ = [
    "ABANDON_WINDOW",
    "CAUSES",
    "DIRECTIONS",
    "ERROR_SIZED_MAX",
    "CaptureSide",
    "Diagnosis",
    "diagnose",
    "load_capture",
]

I2R, R2I = "initiator-to-responder", "responder-to-initiator"
DIRECTIONS = (I2R, R2I)
#: an IKE_AUTH response of at most this many bytes carries an error notify, not a result
ERROR_SIZED_MAX = 128
#: an INFORMATIONAL from the initiator this soon after IKE_AUTH abandons the SA
ABANDON_WINDOW = 2.0
SA_INIT, AUTH, INFORMATIONAL, INTERMEDIATE = 34, 35, 37, 43
N_NO_PROPOSAL, N_INVALID_KE, N_AUTH_FAILED, N_COOKIE = 14, 17, 24, 16390
N_FRAG_SUPPORTED = 16430
_CRITICAL = (SA_INIT, INTERMEDIATE, AUTH)

_CAPTURE_HINT = ("capture on the client and on the server at the same time, e.g. "
                 "`tcpdump -i IF -w FILE -s 0 'udp port 500 or udp port 4500 or ip[6:2] & 0x3fff != 0'`")


# --------------------------------------------------------------------------- one capture


@dataclass
class CaptureSide:
    """One capture, decoded: IKE records, ESP records, fragment groups without a head."""

    role: str
    path: str
    info: CaptureInfo
    stats: dict[str, int]
    ike: list[IkeRecord] = field(default_factory=list)
    esp: list[EspRecord] = field(default_factory=list)
    orphans: list[Datagram] = field(default_factory=list)
    keepalives: int = 0
    by_sa: dict[bytes, list[IkeRecord]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.path, "format": self.info.format, "frames": self.info.frames,
            "ip_packets": self.stats.get("ip", 0), "ip_fragments": self.stats.get("fragments", 0),
            "ike_datagrams": len(self.ike), "esp_packets": len(self.esp), "nat_keepalives": self.keepalives,
            "fragment_groups_without_first": len(self.orphans), "ike_sas": len(self.by_sa),
            "first_ts": self.info.first_ts, "last_ts": self.info.last_ts,
        }


def load_capture(path: str | os.PathLike, role: str = "capture") -> CaptureSide:
    """Read and decode one capture (raises :class:`CaptureInputError`)."""
    p = Path(path)
    info = CaptureInfo(str(p))
    stats: dict[str, int] = {}
    side = CaptureSide(role, str(p), info, stats)
    try:
        for d in datagrams(read_frames(p, info), stats):
            if not d.has_first:
                if d.proto == PROTO_UDP:
                    side.orphans.append(d)
                continue
            c = classify(d)
            if isinstance(c, IkeRecord):
                side.ike.append(c)
                side.by_sa.setdefault(c.spi_i, []).append(c)
            elif isinstance(c, EspRecord):
                side.esp.append(c)
            elif c == "keepalive":
                side.keepalives += 1
    except CaptureInputError:
        raise
    except (ValueError, IndexError, struct.error, OverflowError) as exc:  # a decoder bug must not be a traceback
        raise CaptureInputError(p, f"could not be decoded after packet {info.frames} ({type(exc).__name__}: {exc})",
                                "report this capture as a bug of aovpn-lab") from None
    return side


# --------------------------------------------------------------------------- messages


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


def _build_exchanges(client: list[IkeRecord], server: list[IkeRecord],
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


# --------------------------------------------------------------------------- verdict


@dataclass
class Verdict:
    established: bool = False
    cause: str = "no-response"
    direction: str | None = None
    reason: str = ""
    lost: Message | None = None
    port: int | None = None
    alternatives: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    auth: str | None = None      # responder-refused | initiator-abandoned


def _port_works(sa_views: list[SaView], direction: str, port: int | None, exclude: Message) -> bool:
    """Did any other IKE message sent in this direction arrive whole on this responder port?"""
    for sa in sa_views:
        for m in sa.messages:
            if m is exclude or m.direction != direction or m.port != port:
                continue
            if any(r.dgram.complete for r in m.seen.records):
                return True
    return False


def _loss(m: Message, all_sas: list[SaView]) -> Verdict:
    port = m.port
    blocked = f"udp-{port}-blocked" if port in (500, 4500) else "no-response"
    what = f"{exchange_name(m.exchange)} {'response' if m.response else 'request'} #{m.msg_id}"
    sent, seen = m.sent.metrics(), m.seen.metrics()
    v = Verdict(cause=blocked, direction=m.direction, lost=m, port=port)
    works = _port_works(all_sas, m.direction, port, m)
    if m.sent.skf_total:
        n = m.sent.skf_total
        if sent["ip_fragments"] and seen["ip_fragments"] < sent["ip_fragments"]:
            v.cause = "ip-fragments-dropped"
            v.reason = (f"{what} was split into {n} RFC 7383 fragments, but they were still larger than the "
                        f"MTU and got IP-fragmented ({sent['ip_fragments']} IP fragments sent, "
                        f"{seen['ip_fragments']} arrived)")
        elif m.seen.records or works:
            v.cause = "ike-fragments-dropped"
            v.reason = (f"{what} was sent as {n} RFC 7383 fragments (largest IP packet "
                        f"{sent['largest_ip_packet']} B); {seen.get('ike_fragments_complete', 0)} of them arrived"
                        + ("" if m.seen.records else f", although other packets to UDP {port} do"))
        else:
            v.reason = (f"{what} was sent as {n} RFC 7383 fragments and none arrived; nothing else sent to UDP "
                        f"{port} arrived either")
            v.alternatives = ["ike-fragments-dropped"]
    elif m.ip_fragmented:
        v.cause = "ip-fragments-dropped"
        got = seen["ip_fragments"]
        v.reason = (f"{what} ({m.size} B) was IP-fragmented into {sent['packets'] // max(1, sent['transmissions'])} "
                    f"packets (largest {sent['largest_ip_packet']} B), sent {sent['transmissions']} time(s): "
                    f"{sent['ip_fragments']} fragments sent, {got} arrived")
        if not got and not works:
            v.alternatives = [blocked] if blocked != "no-response" else []
            v.reason += f"; nothing else sent this way ever arrived on UDP {port} either"
            if _port_works(all_sas, I2R if m.direction == R2I else R2I, port, m):
                way = "client to server" if m.direction == R2I else "server to client"
                v.reason += f" (UDP {port} works from {way}, so only a one-way block would look the same)"
            else:
                v.reason += ", so a blocked port would look the same"
    else:
        v.reason = (f"{what} ({m.size} B, not fragmented) was sent {sent['transmissions']} time(s) to UDP "
                    f"{port} and never arrived")
        if works:
            v.notes.append(f"other packets to UDP {port} did arrive: loss is selective (stateful filter, "
                           "rate limit, or an unstable path)")
    return v


def _esp_after(side: CaptureSide, sa_recs: list[IkeRecord], after: float | None) -> dict[str, int]:
    """ESP packets on this SA's addresses/ports in one capture, after ``after``."""
    out = {I2R: 0, R2I: 0}
    flows: dict[tuple, str] = {}
    for r in sa_recs:
        d = r.dgram
        a, b = (d.src, d.sport), (d.dst, d.dport)
        ini, res = (a, b) if r.from_initiator else (b, a)
        flows[(ini, res)] = I2R
        flows[(res, ini)] = R2I
        flows[(ini[0], res[0])] = I2R
        flows[(res[0], ini[0])] = R2I
    if after is None:
        return out
    for e in side.esp:
        d = e.dgram
        if d.ts < after:
            continue
        key = ((d.src, d.sport), (d.dst, d.dport)) if e.udp else (d.src, d.dst)
        if key in flows:
            out[flows[key]] += 1
    return out


def _judge(sa: SaView, all_sas: list[SaView], client: CaptureSide, server: CaptureSide) -> Verdict:
    last_auth: Exchange | None = None
    init_ok = False
    for i, ex in enumerate(sa.exchanges):
        if ex.exchange not in _CRITICAL or not ex.by_initiator:
            continue
        if ex.exchange == AUTH and not init_ok and not any(e.exchange == SA_INIT for e in sa.exchanges):
            init_ok = True  # the capture started after IKE_SA_INIT
        q, r = ex.request, ex.response
        later_round = any(e.exchange == ex.exchange and e.msg_id == ex.msg_id and e.by_initiator
                          for e in sa.exchanges[i + 1:])
        if not q.was_sent and not q.delivered:
            continue  # neither capture has it whole: nothing to judge
        if not q.delivered:
            if later_round:
                continue
            return _loss(q, all_sas)
        if not r.was_sent:
            if later_round:
                continue
            return Verdict(cause="no-response", reason=(
                f"the responder received {ex.name} request #{ex.msg_id} ({q.size} B, {q.seen.complete_copies} "
                f"complete copies) and never answered"))
        if not r.delivered:
            if later_round:
                continue
            return _loss(r, all_sas)
        if ex.exchange == SA_INIT:
            notes = r.notifies
            if N_NO_PROPOSAL in notes:
                return Verdict(cause="no-proposal-chosen", reason=(
                    "the responder answered IKE_SA_INIT with NO_PROPOSAL_CHOSEN: client and server share no IKE "
                    "proposal (Windows error 13868)"))
            if N_INVALID_KE in notes or N_COOKIE in notes:
                if later_round:
                    continue
                if N_INVALID_KE in notes:
                    return Verdict(cause="no-proposal-chosen", reason=(
                        "the responder answered IKE_SA_INIT with INVALID_KE_PAYLOAD and the initiator did not "
                        "retry with the requested DH group"))
                return Verdict(cause="no-response", reason="the responder asked for a COOKIE and the initiator "
                                                          "did not retry")
            errors = [n for n in notes if n <= ikewire.ERROR_NOTIFY_MAX]
            if errors:
                cause = "auth-failed" if N_AUTH_FAILED in errors else "no-response"
                return Verdict(cause=cause, reason="the responder answered IKE_SA_INIT with "
                                                   + ", ".join(notify_name(n) for n in errors))
            init_ok = True
        elif ex.exchange == AUTH:
            last_auth = ex
    if not init_ok:
        return Verdict(cause="no-response", reason="no IKE_SA_INIT exchange of this SA is in the captures")
    if last_auth is None:
        return Verdict(cause="no-response", reason="IKE_SA_INIT completed but the initiator never sent IKE_AUTH "
                                                   "(it gave up, or the client capture stopped too early)")
    resp = last_auth.response
    t_resp = resp.client.first_ts
    esp_c = _esp_after(client, sa.client, t_resp)
    esp_s = _esp_after(server, sa.server, resp.server.first_ts)
    esp_total = sum(esp_c.values()) + sum(esp_s.values())
    if esp_total:
        return Verdict(established=True, cause="none", reason=(
            f"IKE_AUTH completed and ESP flowed on the child SA ({esp_c[I2R]}/{esp_c[R2I]} packets out/in at the "
            "client)"))
    size = resp.size
    if resp.encrypted and size <= ERROR_SIZED_MAX:
        return Verdict(cause="auth-failed", auth="responder-refused", reason=(
            f"the responder answered IKE_AUTH #{last_auth.msg_id} with only {size} B (an error notify such as "
            "AUTHENTICATION_FAILED, not IDr/AUTH/SA/TS) and the initiator did not continue"))
    # did the initiator abandon the SA right away?
    for ex in sa.exchanges:
        if ex.exchange != INFORMATIONAL or not ex.by_initiator or ex.msg_id <= last_auth.msg_id \
                or t_resp is None:
            continue
        t = ex.request.client.first_ts
        if t is not None and 0 <= t - t_resp <= ABANDON_WINDOW:
            return Verdict(cause="auth-failed", auth="initiator-abandoned", reason=(
                f"the responder's IKE_AUTH answer ({size} B) arrived, and {t - t_resp:.3f} s later the initiator "
                f"sent an INFORMATIONAL ({ex.request.size} B) and no traffic followed: the client refused the "
                "server's authentication (its certificate or identity)"))
    return Verdict(established=True, cause="none", reason=(
        f"IKE_AUTH completed: the responder's answer to IKE_AUTH #{last_auth.msg_id} ({size} B) arrived"))


# --------------------------------------------------------------------------- result


_ADVICE = {
    "ip-fragments-dropped": [
        ("Enable IKEv2 fragmentation (RFC 7383) on both ends: RRAS "
         r"HKLM\SYSTEM\CurrentControlSet\Services\RemoteAccess\Parameters\Ikev2\EnableServerFragmentation = 1 "
         "(DWORD) then restart RemoteAccess; Windows clients 1803+ support it (ProfileXML "
         "DisableIKEv2Fragmentation false); strongSwan fragmentation=yes."),
        "Or let IP fragments through every firewall/NAT between client and server (UDP 500 and 4500).",
        ("Or make IKE_AUTH smaller: ECDSA instead of RSA-4096 certificates, a shorter chain (send fewer "
         "intermediates), fewer certificate extensions."),
    ],
    "ike-fragments-dropped": [
        ("Make the RFC 7383 fragment size smaller than the path MTU (strongSwan fragment_size, e.g. 1280 or "
         "less); fragments carry DF and are dropped when too big."),
        ("Check the path for filters dropping large UDP 4500 datagrams, and that ICMP 'fragmentation needed' "
         "reaches the sender."),
    ],
    "udp-500-blocked": ["Allow UDP 500 between client and server in both directions (IKE_SA_INIT)."],
    "udp-4500-blocked": [
        ("Allow UDP 4500 between client and server in both directions (NAT-T: IKE_AUTH and ESP-in-UDP). "
         "With a load balancer, UDP 500 and 4500 of one client must reach the same server."),
    ],
    "no-proposal-chosen": [
        ("Align the IKE proposals: the client's (VPNv2 CryptographySuite / Set-VpnConnectionIPsecConfiguration) "
         "and the server's (Set-VpnServerConfiguration -CustomPolicy), e.g. AES128/SHA256/DH group 14 or "
         "GCMAES128/ECP256."),
    ],
    "auth-failed": [
        ("Check the certificates: the server must trust the issuer of the client's certificate (and vice "
         "versa), EKUs, names (the server's subject/SAN = the name the client dials), validity and "
         "revocation; the responder's and client's logs name the reason."),
    ],
    "auth-failed:responder-refused": [
        ("The server refused the client: it must trust the CA that issued the client's certificate (root and "
         "intermediates), the certificate needs EKU Client Authentication, must be valid and not revoked "
         "(RRAS: CRL checks per CertAuthFlags), and the identity must match the server's policy; for EAP, "
         "check NPS/RADIUS (event log: RasClient 20227, NPS 6273)."),
    ],
    "auth-failed:initiator-abandoned": [
        ("The client refused the server: the client must trust the server certificate's root, the "
         "certificate needs EKU Server Authentication (and IP security IKE intermediate), its subject/SAN "
         "must equal the name the client dials, and it must be valid (Windows: error 13801 / 13806 / "
         "0x800B0101)."),
    ],
    "no-response": [
        ("The responder got the request and stayed silent (or the initiator stopped): check that the IKE "
         "service is running and listening, its logs, and its limits (half-open SAs, per-source SA limits "
         "behind SNAT)."),
    ],
}


@dataclass
class Diagnosis:
    """What :func:`diagnose` found; :meth:`to_json` and :meth:`summary` present it."""

    established: bool
    cause: str
    direction: str | None
    uses_ip_fragmentation: bool
    uses_ike_fragmentation: bool
    reason: str
    advice: list[str]
    alternatives: list[str]
    client: CaptureSide
    server: CaptureSide
    sa: SaView
    nat: bool | None
    notes: list[str] = field(default_factory=list)
    other_sas: list[dict[str, Any]] = field(default_factory=list)
    esp: dict[str, dict[str, int]] = field(default_factory=dict)
    port: int | None = None
    rfc7383: dict[str, bool | None] = field(default_factory=dict)
    auth_failure: str | None = None   # responder-refused | initiator-abandoned

    def sizes(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for exch in (SA_INIT, AUTH):
            for resp in (False, True):
                ms = [m for m in self.sa.messages if m.exchange == exch and m.response == resp and m.size]
                first = min(ms, key=lambda m: m.msg_id, default=None)
                out[f"{exchange_name(exch)}_{'response' if resp else 'request'}"] = first.size if first else None
        return out

    def largest_ip_packet(self) -> dict[str, Any]:
        best: dict[str, Any] = {"size": 0}
        for m in self.sa.messages:
            for role in ("client", "server"):
                for r in getattr(m, role).records:
                    if r.dgram.largest > best["size"]:
                        best = {"size": r.dgram.largest, "capture": role, "exchange": exchange_name(m.exchange),
                                "message_id": m.msg_id, "direction": m.direction,
                                "ip_fragments": r.dgram.packets if r.dgram.fragmented else 0}
        return best

    def _endpoints(self, role: str) -> dict[str, str] | None:
        recs = self.sa.client if role == "client" else self.sa.server
        for r in recs:
            if r.from_initiator and not r.is_response:
                d = r.dgram
                return {"initiator": f"{d.src}:{d.sport}", "responder": f"{d.dst}:{d.dport}"}
        for r in recs:
            d = r.dgram
            return {"initiator": f"{d.dst}:{d.dport}", "responder": f"{d.src}:{d.sport}"}
        return None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: the verdict at the top, the evidence below it."""
        return {
            "established": self.established,
            "cause": self.cause,
            "direction": self.direction,
            "uses_ip_fragmentation": self.uses_ip_fragmentation,
            "uses_ike_fragmentation": self.uses_ike_fragmentation,
            "reason": self.reason,
            "auth_failure": self.auth_failure,
            "alternatives": self.alternatives,
            "advice": self.advice,
            "evidence": {
                "ike_sa": {"initiator_spi": self.sa.spi_i.hex(), "responder_spi": self.sa.spi_r.hex(),
                           "responder_spis": self.sa.responder_spis,
                           "in_client_capture": bool(self.sa.client), "in_server_capture": bool(self.sa.server)},
                "endpoints": {"client_capture": self._endpoints("client"),
                              "server_capture": self._endpoints("server")},
                "nat_between_captures": self.nat,
                "port": self.port,
                "rfc7383_supported": self.rfc7383,
                "exchanges": [m.to_json() for m in self.sa.messages if m.client.records or m.server.records],
                "sizes": self.sizes(),
                "largest_ip_packet": self.largest_ip_packet(),
                "esp": self.esp,
                "captures": {"client": self.client.to_json(), "server": self.server.to_json()},
                "other_sas": self.other_sas,
                "notes": self.notes,
            },
        }

    def summary(self) -> str:
        """A few lines for an engineer: what happened, where it was lost, what to change."""
        spi = f"{self.sa.spi_i.hex()}/{self.sa.spi_r.hex()}"
        if self.established:
            head = f"IKEv2 SA {spi}: ESTABLISHED"
            if self.uses_ip_fragmentation:
                head += " - but only because IP fragments got through (at risk)"
        else:
            where = f", lost {self.direction}" if self.direction else ""
            head = f"IKEv2 SA {spi}: NOT established - cause {self.cause}{where}"
        lines = [head]
        c, s = self._endpoints("client"), self._endpoints("server")
        if c:
            lines.append(f"  client capture {self.client.path}: {c['initiator']} -> {c['responder']}")
        if s:
            lines.append(f"  server capture {self.server.path}: {s['initiator']} -> {s['responder']}"
                         + ("  (NAT between the captures)" if self.nat else ""))
        elif not self.sa.server:
            lines.append(f"  server capture {self.server.path}: this IKE SA never appears in it")
        for m in self.sa.messages:
            if not (m.client.records or m.server.records):
                continue
            sent, seen = m.sent.metrics(), m.seen.metrics()
            arrow = "I->R" if m.direction == I2R else "R->I"
            kind = "response" if m.response else "request"
            if sent["transmissions"]:
                how = f"{sent['ike_size']} B"
                if sent["ike_fragments"]:
                    how += f" as {sent['ike_fragments']} IKE fragments"
                if sent["ip_fragments"]:
                    how += f", {sent['ip_fragments']} IP fragments"
                how += f", sent {sent['transmissions']}x"
                if sent["retransmits"]:
                    how += f" ({sent['retransmits']} retransmits)"
            else:
                how = "not in the sender's capture"
            got = (f"arrived {seen['messages']}x" if seen["messages"] else
                   f"NOT arrived ({seen['packets']} of {sent['packets']} packets seen)")
            shown = [notify_name(n) for n in m.notifies if n in _SHOWN_NOTIFIES or n <= ikewire.ERROR_NOTIFY_MAX]
            extra = f" [{', '.join(shown)}]" if shown else ""
            lines.append(f"  {arrow} {exchange_name(m.exchange):<13} {kind:<8} #{m.msg_id} UDP {m.port}: "
                         f"{how}; {got}{extra}")
        lp = self.largest_ip_packet()
        if lp.get("size"):
            lines.append(f"  largest IP packet: {lp['size']} B ({lp['exchange']}, {lp['direction']})")
        lines.append(f"What happened: {self.reason}.")
        if self.alternatives:
            lines.append(f"Cannot rule out: {', '.join(self.alternatives)} (no small packet was sent to the same port "
                         "to compare; `aovpn-lab probe ikev2` runs a differential test).")
        for n in self.notes:
            lines.append(f"Note: {n}.")
        if self.advice:
            lines.append("What to change:")
            lines.extend(f"  - {a}" for a in self.advice)
        return "\n".join(lines)


_SHOWN_NOTIFIES = (N_COOKIE, N_FRAG_SUPPORTED)


def _rfc7383(sa: SaView) -> dict[str, bool | None]:
    """Who advertised IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT (None: not seen)."""
    out: dict[str, bool | None] = {"initiator": None, "responder": None}
    for ex in sa.exchanges:
        if ex.exchange != SA_INIT:
            continue
        if ex.request.any_copy:
            out["initiator"] = N_FRAG_SUPPORTED in ex.request.notifies
        if ex.response.any_copy and not any(n <= ikewire.ERROR_NOTIFY_MAX for n in ex.response.notifies):
            out["responder"] = N_FRAG_SUPPORTED in ex.response.notifies
    return out


def _rfc7383_note(sup: dict[str, bool | None]) -> str | None:
    i, r = sup.get("initiator"), sup.get("responder")
    if i is None:
        return None
    if not i and not r:
        return ("neither end advertised IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT: RFC 7383 fragmentation "
                "is off on both")
    if i and r is False:
        return ("the client offered RFC 7383 fragmentation, the server did not (RRAS: set "
                "EnableServerFragmentation = 1)")
    if r and not i:
        return ("the server supports RFC 7383 fragmentation, the client did not offer it (Windows 10 1803+; "
                "ProfileXML DisableIKEv2Fragmentation must not be true)")
    if i and r:
        return "both ends advertised RFC 7383 fragmentation"
    return None


def _sa_summary(sa: SaView, v: Verdict) -> dict[str, Any]:
    return {"initiator_spi": sa.spi_i.hex(), "responder_spi": sa.spi_r.hex(), "established": v.established,
            "cause": v.cause, "direction": v.direction, "in_client_capture": bool(sa.client),
            "in_server_capture": bool(sa.server)}


def diagnose(client_pcap: str | os.PathLike, server_pcap: str | os.PathLike) -> Diagnosis:
    """Compare a client capture and a server capture of the same IKEv2 attempt(s).

    Raises :class:`~aovpn_lab.capture.errors.CaptureInputError` for an unreadable, non-
    pcap/pcapng, truncated or empty (0-byte) file, or a client capture without IKE, and
    :class:`~aovpn_lab.capture.errors.CaptureMismatchError` when the client received IKE
    answers for SAs of which the server capture holds none (wrong server, wrong time,
    load balancer). A server capture with no packets, or only other clients' SAs, is
    valid when the client never got an answer: that is what a blocked path looks like.
    See the module docstring for the rules.
    """
    client = load_capture(client_pcap, "client")
    server = load_capture(server_pcap, "server")
    if not client.ike:
        raise CaptureInputError(client.path, f"holds no IKEv2 traffic (UDP 500/4500) in {client.info.frames} "
                                             "packets", _CAPTURE_HINT)
    orphans = {"client": client.orphans, "server": server.orphans}

    common = [spi for spi in client.by_sa if spi in server.by_sa]
    answered = [spi for spi, recs in client.by_sa.items() if any(r.is_response for r in recs)]
    if not common and answered:
        what = "holds no IKEv2 traffic" if not server.ike else \
            f"shares no IKE SA with the client capture ({len(server.by_sa)} other SAs in it)"
        raise CaptureMismatchError(
            f"{server.path} {what}, yet the client ({client.path}) got answers for IKE SA(s) "
            f"{', '.join(s.hex() for s in answered[:3])}",
            hint="take both captures at the same time, on the server that actually answered (behind a load "
                 "balancer: every node, and UDP 500/4500 must reach the same one)")

    views = [SaView(spi, client.by_sa.get(spi, []), server.by_sa.get(spi, [])) for spi in client.by_sa]
    for v in views:
        v.exchanges = _build_exchanges(v.client, v.server, orphans)
    views.sort(key=lambda s: s.start)
    verdicts = [_judge(sa, views, client, server) for sa in views]
    started = [i for i, sa in enumerate(views)
               if any(r.exchange in (SA_INIT, AUTH) and not r.is_response for r in sa.client)] or \
        list(range(len(views)))
    est = [i for i in started if verdicts[i].established]
    pick = est[-1] if est else started[-1]
    sa, v = views[pick], verdicts[pick]

    notes = list(v.notes)
    if not common:
        notes.append(f"none of the client's IKE SAs appears in {server.path}"
                     + ("" if server.ike else " (it holds no IKE traffic at all)"))
    if server.stats.get("duplicates") or client.stats.get("duplicates"):
        notes.append("some IP fragments were captured twice (capture on one interface, not 'any')")
    esp = {"client": _esp_after(client, sa.client, min((r.dgram.ts for r in sa.client), default=None)),
           "server": _esp_after(server, sa.server, min((r.dgram.ts for r in sa.server), default=None))}
    nat = None
    c_ep = next(((r.dgram.src, r.dgram.sport) for r in sa.client if r.from_initiator), None)
    s_ep = next(((r.dgram.src, r.dgram.sport) for r in sa.server if r.from_initiator), None)
    if c_ep and s_ep:
        nat = c_ep[0] != s_ep[0]
    ike_frag = any(m.sent.skf_total or m.seen.skf_total for m in sa.messages)
    uses_ipf = any(m.ip_fragmented for m in sa.messages)
    sup = _rfc7383(sa)
    if uses_ipf or v.cause in ("ip-fragments-dropped", "ike-fragments-dropped"):
        note = _rfc7383_note(sup)
        if note:
            notes.append(note)
    advice: list[str] = []
    if not v.established:
        advice = list(_ADVICE.get(f"{v.cause}:{v.auth}", _ADVICE.get(v.cause, [])))
        for alt in v.alternatives:
            advice += [a for a in _ADVICE.get(alt, []) if a not in advice]
    elif uses_ipf:
        at_risk = ("It works here, but IKE relies on IP fragmentation: any firewall or NAT that drops "
                   "fragments (hotel, guest and mobile networks often do) will break it (Windows error 809).")
        advice = [at_risk, *_ADVICE["ip-fragments-dropped"][:1], *_ADVICE["ip-fragments-dropped"][2:]]
    others = [_sa_summary(s, verdicts[i]) for i, s in enumerate(views) if i != pick]
    return Diagnosis(
        established=v.established, cause=v.cause, direction=v.direction, uses_ip_fragmentation=uses_ipf,
        uses_ike_fragmentation=ike_frag, reason=v.reason, advice=advice, alternatives=v.alternatives,
        client=client, server=server, sa=sa, nat=nat, notes=notes, other_sas=others, esp=esp, port=v.port,
        rfc7383=sup, auth_failure=v.auth)
