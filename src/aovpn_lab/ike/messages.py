"""IKE messages as charon saw them, rebuilt from its log lines.

charon logs, per IKE SA, what it generated and parsed and the packets it sent and
received. Folded together, that is the evidence a report row needs: which exchange,
which payloads, how many bytes and packets, how many IKE fragments, retransmits.

    >>> msgs = parse([
    ...   "generating IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) ]",
    ...   "sending packet: from 192.0.2.10[500] to 203.0.113.10[500] (464 bytes)",
    ...   "received packet: from 203.0.113.10[500] to 192.0.2.10[500] (472 bytes)",
    ...   "parsed IKE_SA_INIT response 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) ]"])
    >>> [(m.exchange, m.kind, m.direction, m.size) for m in msgs]
    [('IKE_SA_INIT', 'request', 'sent', 464), ('IKE_SA_INIT', 'response', 'received', 472)]
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

GENERATING = re.compile(r"^generating (\S+) (request|response) (\d+) \[ ?(.*?) ?\]$")
PARSED = re.compile(r"^parsed (\S+) (request|response) (\d+) \[ ?(.*?) ?\]$")
PACKET = re.compile(r"^(sending|received) packet: from (\S+)\[(\d+)\] to (\S+)\[(\d+)\] \((\d+) bytes\)$")
SPLITTING = re.compile(r"^splitting IKE message \((\d+) bytes\) into (\d+) fragments$")
REASSEMBLED = re.compile(r"^received fragment #(\d+) of (\d+), reassembled fragmented IKE message \((\d+) bytes\)$")
RETRANSMIT = re.compile(r"^retransmit (\d+) of request with message ID (\d+)$")
EF = re.compile(r"^EF\((\d+)/(\d+)\)$")


@dataclass
class IkeMessage:
    direction: str            # sent | received
    exchange: str             # IKE_SA_INIT, IKE_AUTH, INFORMATIONAL, ...
    kind: str                 # request | response
    message_id: int
    payloads: list[str] = field(default_factory=list)
    size: int = 0             # bytes of the IKE message (before RFC 7383 fragmentation, if any)
    wire_bytes: int = 0       # UDP payload bytes of all its packets (fragments summed)
    packets: int = 0          # UDP datagrams that carried it (once; see retransmits)
    ike_fragments: int = 0    # RFC 7383 fragments (0: not fragmented by IKE)
    src: str = ""
    dst: str = ""
    retransmits: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def parse(lines: list[str]) -> list[IkeMessage]:
    msgs: list[IkeMessage] = []
    pending_sent: IkeMessage | None = None   # generated, waiting for its packets
    pending_recv: list[tuple[str, str, int]] = []  # packets received before "parsed"
    split_size = 0            # announced by "splitting", applies to the next generated message
    reassembled_size = 0
    for raw in lines:
        line = raw.strip()
        if m := SPLITTING.match(line):
            split_size = int(m.group(1))
        elif m := GENERATING.match(line):
            exch, kind, mid, payloads = m.group(1), m.group(2), int(m.group(3)), m.group(4).split()
            ef = EF.match(payloads[0]) if len(payloads) == 1 else None
            same = pending_sent is not None and pending_sent.exchange == exch and \
                pending_sent.message_id == mid and pending_sent.kind == kind
            if ef and same and pending_sent.ike_fragments:
                continue  # further fragments of the message already opened
            if ef and same and not pending_sent.packets:
                # charon logs the whole message first, then "splitting", then each fragment:
                # one message, sent as fragments.
                pending_sent.ike_fragments = int(ef.group(2))
                pending_sent.size, split_size = split_size or pending_sent.size, 0
                continue
            msg = IkeMessage("sent", exch, kind, mid, [] if ef else payloads)
            if ef:
                msg.ike_fragments = int(ef.group(2))
                msg.payloads = [f"EF(x/{ef.group(2)})"]
                msg.size, split_size = split_size, 0
            msgs.append(msg)
            pending_sent = msg
        elif m := PACKET.match(line):
            way, src, sport, dst, dport, size = m.groups()
            if way == "sending":
                target = pending_sent
                if target is not None:
                    if target.retransmits:
                        continue  # retransmitted copies count once
                    target.packets += 1
                    target.wire_bytes += int(size)
                    if not target.ike_fragments:
                        target.size = target.wire_bytes
                    target.src, target.dst = f"{src}:{sport}", f"{dst}:{dport}"
            else:
                pending_recv.append((f"{src}:{sport}", f"{dst}:{dport}", int(size)))
        elif m := REASSEMBLED.match(line):
            reassembled_size = int(m.group(3))
        elif m := PARSED.match(line):
            exch, kind, mid, payloads = m.group(1), m.group(2), int(m.group(3)), m.group(4).split()
            ef = EF.match(payloads[0]) if len(payloads) == 1 else None
            if ef:
                continue  # a fragment: the reassembled message is parsed again in full
            msg = IkeMessage("received", exch, kind, mid, payloads)
            if pending_recv:
                msg.src, msg.dst = pending_recv[-1][0], pending_recv[-1][1]
                msg.packets = len(pending_recv)
                msg.wire_bytes = msg.size = sum(p[2] for p in pending_recv)
                if len(pending_recv) > 1:
                    msg.ike_fragments = len(pending_recv)
            if reassembled_size:
                msg.size = max(msg.size, reassembled_size)
            pending_recv, reassembled_size = [], 0
            msgs.append(msg)
        elif m := RETRANSMIT.match(line):
            mid = int(m.group(2))
            for msg in reversed(msgs):
                if msg.direction == "sent" and msg.kind == "request" and msg.message_id == mid:
                    msg.retransmits = int(m.group(1))
                    break
    return msgs


def find(msgs: list[IkeMessage], exchange: str, kind: str, direction: str | None = None) -> IkeMessage | None:
    """The message of that exchange that counts: for IKE_SA_INIT the last one (after a
    COOKIE or INVALID_KE round the repeated exchange is the real one), for the others the
    first (the first IKE_AUTH carries the certificates; EAP rounds follow it)."""
    ordered = reversed(msgs) if exchange == "IKE_SA_INIT" else msgs
    for m in ordered:
        if m.exchange == exchange and m.kind == kind and (direction is None or m.direction == direction):
            return m
    return None
