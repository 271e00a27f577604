"""Stateless IKEv2 reachability and policy probes (scapy contrib IKEv2 layers).

The trick that keeps every probe stateless on the responder (RFC 7296 1.2/3.4):
the KE payload carries a *decoy* Diffie-Hellman group that is in none of the
offered proposals.  A responder that accepts one of the proposals must then
answer ``INVALID_KE_PAYLOAD`` naming the group it wants; a responder that
accepts none answers ``NO_PROPOSAL_CHOSEN``.  Neither answer creates an IKE_SA,
so probing never fills the responder's half-open SA table (strongSwan ignores a
source address after 5 half-open SAs).

Public API:

* :func:`build_ike_sa_init` - a well-formed IKE_SA_INIT request, optionally
  padded to an exact size so it gets IP-fragmented on the wire;
* :func:`parse_ike_answer` - classify an answer (:class:`IkeAnswer`);
* :func:`exchange` - one request/answer over plain UDP (non-ESP marker on 4500);
* :func:`reachability` - UDP 500 / UDP 4500 / IP-fragment differential test;
* :func:`accepted_proposals` and :func:`preferred_group` - policy probes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from scapy.contrib.ikev2 import (
    IKEv2,
    IKEv2_KE,
    IKEv2_Nonce,
    IKEv2_Notify,
    IKEv2_Proposal,
    IKEv2_SA,
    IKEv2_Transform,
    IKEv2_VendorID,
    IKEv2ExchangeTypes,
    IKEv2NotifyMessageTypes,
)
from scapy.packet import NoPayload, Raw

from . import transforms as tf

__all__ = [
    "IKE_PORT",
    "NATT_PORT",
    "NON_ESP_MARKER",
    "IKE_SA_INIT",
    "N_NO_PROPOSAL_CHOSEN",
    "N_INVALID_KE_PAYLOAD",
    "N_COOKIE",
    "N_NAT_DETECTION_SOURCE_IP",
    "N_NAT_DETECTION_DESTINATION_IP",
    "N_IKEV2_FRAGMENTATION_SUPPORTED",
    "PAD_VENDOR_ID_PREFIX",
    "DEFAULT_REACH_PROPOSALS",
    "DEFAULT_CANDIDATES",
    "IkeAnswer",
    "ProbeResult",
    "nat_detection_hash",
    "decoy_group",
    "build_ike_sa_init",
    "parse_ike_answer",
    "probe",
    "exchange",
    "reachability",
    "reachability_verdict",
    "accepted_proposals",
    "preferred_group",
]

IKE_PORT = 500
NATT_PORT = 4500
NON_ESP_MARKER = b"\x00\x00\x00\x00"

IKE_SA_INIT = 34

N_NO_PROPOSAL_CHOSEN = 14
N_INVALID_KE_PAYLOAD = 17
N_COOKIE = 16390
N_NAT_DETECTION_SOURCE_IP = 16388
N_NAT_DETECTION_DESTINATION_IP = 16389
N_IKEV2_FRAGMENTATION_SUPPORTED = 16430

# payload type numbers (RFC 7296 3.2)
_PT_NONE, _PT_PROPOSAL, _PT_TRANSFORM = 0, 2, 3
_PT_SA, _PT_KE, _PT_NONCE, _PT_NOTIFY, _PT_VID = 33, 34, 40, 41, 43

_FLAG_INITIATOR = 0x08
_FLAG_RESPONSE = 0x20

_HEADER_LEN = 28
_MAX_MESSAGE = 65000  # stays below the UDP datagram limit, with or without marker

PAD_VENDOR_ID_PREFIX = b"aovpn-lab pad "

# Decoy KE groups, in order of preference: well-known groups every stack can
# parse first; the first one that is in none of the offered proposals is used.
_DECOY_ORDER = (2, 14, 19, 20, 1, 31, 21, 15, 16, 5, 24)

# Broad offer for reachability probes: a gateway usually accepts one of these,
# which makes it answer INVALID_KE (decoy group); NO_PROPOSAL_CHOSEN is just as
# good an answer for reachability.  Group 1 (modp768) is left out so it can be
# the decoy.
DEFAULT_REACH_PROPOSALS = (
    "aes256-aes128-3des-sha256-sha384-sha1-modp2048-ecp256-ecp384-modp1024",
    "aes256gcm16-aes128gcm16-prfsha256-prfsha384-prfsha1-modp2048-ecp256-ecp384-modp1024",
)

# Typical Always On VPN policy candidates (Windows default, RRAS recommended
# standard and enhanced sets, strongSwan style).
DEFAULT_CANDIDATES = (
    "3des-sha1-modp1024",
    "aes256-sha1-modp1024",
    "aes128-sha256-modp2048",
    "aes256-sha256-modp2048",
    "aes128gcm16-prfsha256-modp2048",
    "aes128gcm16-prfsha256-ecp256",
    "aes256gcm16-prfsha384-ecp384",
)


# ---------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------


def _split_hostport(value, default_port: int) -> tuple[str, int]:
    if isinstance(value, (tuple, list)):
        addr, port = value[0], int(value[1])
    else:
        addr, port = str(value), default_port
    return str(ipaddress.ip_address(addr)), port


def nat_detection_hash(spi_i: bytes, spi_r: bytes, addr: str, port: int) -> bytes:
    """RFC 7296 2.23: SHA1(SPIi | SPIr | IP address | port)."""
    ip = ipaddress.ip_address(addr)
    return hashlib.sha1(spi_i + spi_r + ip.packed + struct.pack("!H", port)).digest()


def _as_proposals(proposals) -> list[tf.Proposal]:
    if isinstance(proposals, (str, tf.Proposal)):
        proposals = [proposals]
    result = [tf.parse_proposal(p) for p in proposals]
    if not result:
        raise ValueError("at least one proposal is needed")
    return result


def _as_group(group) -> int:
    if isinstance(group, int):
        return group
    alg = tf.lookup(str(group))
    if alg.type != tf.DH:
        raise ValueError(f"{group!r} is not a DH group")
    return alg.id


def decoy_group(proposals) -> int:
    """A DH group for the KE payload that none of ``proposals`` contains."""
    used = {g for p in _as_proposals(proposals) for g in p.dh_groups}
    for g in _DECOY_ORDER:
        if g not in used:
            return g
    raise ValueError("the proposals use every decoy DH group; pass ke_group explicitly")


def _ke_data(group: int) -> bytes:
    """A structurally valid public value for ``group`` (never used for keys)."""
    if group in (19, 20, 21):
        from cryptography.hazmat.primitives.asymmetric import ec

        curve = {19: ec.SECP256R1(), 20: ec.SECP384R1(), 21: ec.SECP521R1()}[group]
        nums = ec.generate_private_key(curve).public_key().public_numbers()
        size = (curve.key_size + 7) // 8
        return nums.x.to_bytes(size, "big") + nums.y.to_bytes(size, "big")
    if group == 31:
        from cryptography.hazmat.primitives.asymmetric import x25519
        from cryptography.hazmat.primitives import serialization

        return x25519.X25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    length = tf.DH_KE_LENGTH.get(group, 256)
    data = bytearray(os.urandom(length))
    # MODP primes start with 64 one bits: a first byte below 0xff keeps the
    # value in 1 < y < p-1, which is all responders check.
    data[0] = 0x40 | (data[0] & 0x3F)
    return bytes(data)


def _proposal_chain(proposals: Sequence[tf.Proposal]):
    chain = None
    for num, prop in enumerate(proposals, start=1):
        ids = prop.transform_ids()
        trans = None
        for i, (ttype, tid, klen) in enumerate(ids):
            t = IKEv2_Transform(
                next_payload=_PT_NONE if i == len(ids) - 1 else _PT_TRANSFORM,
                transform_type=ttype,
                transform_id=tid,
                length=12 if klen else 8,
                **({"key_length": klen} if klen else {}),
            )
            trans = t if trans is None else trans / t
        p = IKEv2_Proposal(
            next_payload=_PT_NONE if num == len(proposals) else _PT_PROPOSAL,
            proposal=num,
            proto=1,
            trans_nb=len(ids),
            trans=trans,
        )
        chain = p if chain is None else chain / p
    return chain


def build_ike_sa_init(
    proposals,
    ke_group,
    *,
    spi: bytes | None = None,
    nonce: bytes | None = None,
    src=None,
    dst=None,
    pad_to: int | None = None,
    fragmentation_supported: bool = True,
    ke_data: bytes | None = None,
    cookie: bytes | None = None,
) -> bytes:
    """Build an IKE_SA_INIT request.

    proposals: one proposal or a list (strongSwan or Windows spelling, or
        :class:`~aovpn_lab.ike.transforms.Proposal`), numbered 1..n in one SA.
    ke_group: DH group number or name for the KE payload.
    spi: 8-byte initiator SPI (random, non-zero by default).
    nonce: Ni (32 random bytes by default; RFC 7296 allows 16..256).
    src, dst: ``"addr"`` or ``(addr, port)`` (port 500 if omitted); when both
        are given, NAT_DETECTION_SOURCE_IP / _DESTINATION_IP notifies are added.
    pad_to: grow the IKE message to exactly this many bytes (a Vendor ID
        payload of filler; for 1-3 missing bytes a default nonce is lengthened).
    fragmentation_supported: add the IKEV2_FRAGMENTATION_SUPPORTED notify.
    ke_data: raw KE payload data (a valid-looking value by default).
    cookie: the responder's COOKIE notify data, sent back first (RFC 7296 2.6).

    Returns the IKE message (no UDP header, no non-ESP marker).
    """
    props = _as_proposals(proposals)
    group = _as_group(ke_group)
    if spi is None:
        spi = os.urandom(8)
        while spi == b"\x00" * 8:
            spi = os.urandom(8)
    if len(spi) != 8:
        raise ValueError("spi must be 8 bytes")
    if spi == b"\x00" * 8:
        raise ValueError("the initiator SPI must not be zero (RFC 7296 3.1)")
    own_nonce = nonce is None
    if own_nonce:
        nonce = os.urandom(32)
    if not 16 <= len(nonce) <= 256:
        raise ValueError("nonce must be 16..256 bytes (RFC 7296 3.9)")
    if ke_data is None:
        ke_data = _ke_data(group)
    if pad_to is not None and not 0 < pad_to <= _MAX_MESSAGE:
        raise ValueError(f"pad_to must be 1..{_MAX_MESSAGE}")

    natd = None
    if src is not None and dst is not None:
        s_addr, s_port = _split_hostport(src, IKE_PORT)
        d_addr, d_port = _split_hostport(dst, IKE_PORT)
        zero = b"\x00" * 8
        natd = (
            nat_detection_hash(spi, zero, s_addr, s_port),
            nat_detection_hash(spi, zero, d_addr, d_port),
        )

    def assemble(nonce_value: bytes, filler: bytes | None) -> bytes:
        # A COOKIE, when the responder asked for one, must be the first payload.
        payloads: list[tuple[int, object]] = [
            (_PT_NOTIFY, IKEv2_Notify(proto=0, type=N_COOKIE, notify=cookie)),
        ] if cookie else []
        payloads += [
            (_PT_SA, IKEv2_SA(prop=_proposal_chain(props))),
            (_PT_KE, IKEv2_KE(group=group, ke=ke_data)),
            (_PT_NONCE, IKEv2_Nonce(nonce=nonce_value)),
        ]
        if natd:
            payloads.append(
                (_PT_NOTIFY, IKEv2_Notify(proto=0, type=N_NAT_DETECTION_SOURCE_IP, notify=natd[0]))
            )
            payloads.append(
                (_PT_NOTIFY,
                 IKEv2_Notify(proto=0, type=N_NAT_DETECTION_DESTINATION_IP, notify=natd[1]))
            )
        if fragmentation_supported:
            payloads.append(
                (_PT_NOTIFY, IKEv2_Notify(proto=0, type=N_IKEV2_FRAGMENTATION_SUPPORTED))
            )
        if filler is not None:
            payloads.append((_PT_VID, IKEv2_VendorID(vendorID=filler)))
        pkt = IKEv2(
            init_SPI=spi,
            resp_SPI=b"\x00" * 8,
            next_payload=payloads[0][0],
            exch_type=IKE_SA_INIT,
            flags=_FLAG_INITIATOR,
            id=0,
        )
        for i, (_, pl) in enumerate(payloads):
            pl.next_payload = payloads[i + 1][0] if i + 1 < len(payloads) else _PT_NONE
            pkt = pkt / pl
        return bytes(pkt)

    msg = assemble(nonce, None)
    if pad_to is None or pad_to == len(msg):
        return msg
    diff = pad_to - len(msg)
    if diff < 0:
        raise ValueError(f"pad_to={pad_to} is smaller than the message ({len(msg)} bytes)")
    if diff < 4:
        if not own_nonce or len(nonce) + diff > 256:
            raise ValueError(
                f"pad_to={pad_to} leaves {diff} byte(s), too few for a Vendor ID payload "
                f"(use {len(msg)} or at least {len(msg) + 4})"
            )
        msg = assemble(nonce + os.urandom(diff), None)
    else:
        size = diff - 4
        filler = (PAD_VENDOR_ID_PREFIX * (size // len(PAD_VENDOR_ID_PREFIX) + 1))[:size]
        msg = assemble(nonce, filler)
    assert len(msg) == pad_to, (len(msg), pad_to)
    return msg


# ---------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------


@dataclass
class IkeAnswer:
    """What an IKE message says, classified for probing.

    kind: ``sa-init-accepted`` (IKE_SA_INIT response with SA and KE),
    ``invalid-ke`` (INVALID_KE_PAYLOAD; ``requested_group`` is the group the
    responder wants), ``no-proposal-chosen`` or ``other``.
    """

    kind: str
    exchange: int | None
    exchange_name: str | None
    is_response: bool
    initiator_spi: bytes = b""
    responder_spi: bytes = b""
    message_id: int | None = None
    notify_types: list[int] = field(default_factory=list)
    cookie: bytes | None = None  # a responder under load asks for it back (RFC 7296 2.6)
    requested_group: int | None = None
    chosen_proposal: list[tuple[int, int, int | None]] | None = None
    chosen_proposal_text: str | None = None
    ke_group: int | None = None
    vendor_ids: list[bytes] = field(default_factory=list)
    size: int = 0
    error: str | None = None
    rtt: float | None = None  # filled in by exchange()
    peer: tuple[str, int] | None = None  # filled in by exchange()

    @property
    def notify_names(self) -> list[str]:
        return [IKEv2NotifyMessageTypes.get(t, str(t)) for t in self.notify_types]

    @property
    def requested_group_name(self) -> str | None:
        return tf.dh_group_name(self.requested_group)

    @property
    def fragmentation_supported(self) -> bool:
        return N_IKEV2_FRAGMENTATION_SUPPORTED in self.notify_types

    def as_dict(self) -> dict:
        d = asdict(self)
        d["initiator_spi"] = self.initiator_spi.hex()
        d["responder_spi"] = self.responder_spi.hex()
        d["vendor_ids"] = [v.hex() for v in self.vendor_ids]
        d["notify_names"] = self.notify_names
        d["requested_group_name"] = self.requested_group_name
        d["fragmentation_supported"] = self.fragmentation_supported
        return d


def _other(data: bytes, error: str) -> IkeAnswer:
    return IkeAnswer(kind="other", exchange=None, exchange_name=None, is_response=False,
                     size=len(data), error=error)


def parse_ike_answer(data: bytes) -> IkeAnswer:
    """Parse an IKE message (a leading non-ESP marker is stripped) into an IkeAnswer.

    Never raises for malformed input: such data gives ``kind='other'`` with
    ``error`` set.
    """
    data = bytes(data)
    if len(data) >= 4 + _HEADER_LEN and data[:4] == NON_ESP_MARKER:
        data = data[4:]  # an IKE initiator SPI is never zero, so this is the marker
    if len(data) < _HEADER_LEN:
        return _other(data, f"too short for an IKE header ({len(data)} bytes)")
    version = data[17]
    if version >> 4 != 2:
        return _other(data, f"not IKEv2 (version byte 0x{version:02x})")
    exch, flags = data[18], data[19]
    (declared,) = struct.unpack("!I", data[24:28])
    ans = IkeAnswer(
        kind="other",
        exchange=exch,
        exchange_name=IKEv2ExchangeTypes.get(exch, str(exch)),
        is_response=bool(flags & _FLAG_RESPONSE),
        initiator_spi=data[:8],
        responder_spi=data[8:16],
        message_id=struct.unpack("!I", data[20:24])[0],
        size=len(data),
    )
    if declared != len(data):
        ans.error = f"header length {declared} != {len(data)} bytes received"
    has_sa = has_ke = False
    try:
        pkt = IKEv2(data)
        pl = pkt.payload
        hops = 0
        while pl is not None and not isinstance(pl, (NoPayload, Raw)) and hops < 256:
            hops += 1
            if isinstance(pl, IKEv2_Notify):
                ans.notify_types.append(int(pl.type))
                if int(pl.type) == N_COOKIE:
                    ans.cookie = bytes(pl.notify or b"")
                if int(pl.type) == N_INVALID_KE_PAYLOAD:
                    nd = bytes(pl.notify or b"")
                    if len(nd) >= 2:
                        ans.requested_group = struct.unpack("!H", nd[:2])[0]
            elif isinstance(pl, IKEv2_SA):
                has_sa = True
                prop = pl.prop
                if isinstance(prop, IKEv2_Proposal):
                    ans.chosen_proposal = _transforms_of(prop)
                    ans.chosen_proposal_text = _proposal_text(ans.chosen_proposal)
            elif isinstance(pl, IKEv2_KE):
                has_ke = True
                ans.ke_group = int(pl.group)
            elif isinstance(pl, IKEv2_VendorID):
                ans.vendor_ids.append(bytes(pl.vendorID))
            pl = pl.payload
    except Exception as exc:  # scapy on malformed input
        ans.error = f"malformed payloads: {exc!r}"
    if ans.exchange == IKE_SA_INIT and ans.is_response:
        if N_INVALID_KE_PAYLOAD in ans.notify_types:
            ans.kind = "invalid-ke"
        elif N_NO_PROPOSAL_CHOSEN in ans.notify_types:
            ans.kind = "no-proposal-chosen"
        elif has_sa and has_ke:
            ans.kind = "sa-init-accepted"
    return ans


def _transforms_of(prop) -> list[tuple[int, int, int | None]]:
    out = []
    t = prop.trans
    hops = 0
    while isinstance(t, IKEv2_Transform) and hops < 64:
        hops += 1
        klen = (int(t.key_length) & 0xFFFF) if (t.length or 8) > 8 else None
        out.append((int(t.transform_type), int(t.transform_id), klen))
        t = t.payload
    return out


def _proposal_text(ids: list[tuple[int, int, int | None]]) -> str | None:
    algs = [tf.algorithm_by_id(*t) for t in ids]
    if not algs or any(a is None for a in algs):
        return None
    by = {k: tuple(a for a in algs if a.type == k) for k in (tf.ENCR, tf.INTEG, tf.PRF, tf.DH)}
    return tf.Proposal(by[tf.ENCR], by[tf.INTEG], by[tf.PRF], by[tf.DH]).strongswan()


# ---------------------------------------------------------------------------
# transport
# ---------------------------------------------------------------------------


@dataclass
class ProbeResult:
    """One request/answer attempt: what was sent and what (if anything) came back."""

    port: int
    sent: int  # IKE message bytes
    status: str  # answered | timeout | refused | error
    answer: IkeAnswer | None = None
    rtt: float | None = None
    local: tuple[str, int] | None = None
    error: str | None = None

    @property
    def answered(self) -> bool:
        return self.answer is not None

    def as_dict(self) -> dict:
        return {
            "port": self.port,
            "sent_bytes": self.sent,
            "status": self.status,
            "answered": self.answered,
            "kind": self.answer.kind if self.answer else None,
            "notify_types": list(self.answer.notify_types) if self.answer else [],
            "requested_group": self.answer.requested_group if self.answer else None,
            "answer_bytes": self.answer.size if self.answer else None,
            "rtt_ms": round(self.rtt * 1000, 2) if self.rtt is not None else None,
            "error": self.error,
        }


def _resolve(host: str) -> tuple[int, str]:
    try:
        ip = ipaddress.ip_address(host)
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), str(ip)
    except ValueError:
        info = socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)[0]
        return info[0], info[4][0]


def _new_socket(family: int, src_port: int | None) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # DF off: let the kernel IP-fragment datagrams above the path MTU
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10),
                            getattr(socket, "IP_PMTUDISC_DONT", 0))
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_MTU_DISCOVER", 23),
                            getattr(socket, "IPV6_PMTUDISC_DONT", 0))
    except OSError:
        pass
    if src_port is not None:
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", src_port))
    return sock


def probe(
    dst_addr: str,
    dst_port: int,
    message: bytes,
    *,
    timeout: float = 1.0,
    src_port: int | None = None,
    sock=None,
    marker: bool | None = None,
) -> ProbeResult:
    """Send ``message`` once and wait up to ``timeout`` s for the matching answer.

    Only datagrams from ``dst_addr`` whose initiator SPI matches are taken;
    anything else is ignored until the deadline.  ``marker`` (default: port
    4500) prepends the 4-byte non-ESP marker and requires/strips it in answers.
    """
    family, ip = _resolve(dst_addr)
    use_marker = (dst_port == NATT_PORT) if marker is None else marker
    spi = bytes(message[:8])
    own = sock is None
    if own:
        sock = _new_socket(family, src_port)
    result = ProbeResult(port=dst_port, sent=len(message), status="timeout")
    try:
        wire = (NON_ESP_MARKER + message) if use_marker else bytes(message)
        start = time.monotonic()
        deadline = start + max(0.0, timeout)
        try:
            if own:
                sock.connect((ip, dst_port))  # ICMP port unreachable -> ECONNREFUSED
                sock.send(wire)
            else:
                sock.sendto(wire, (ip, dst_port))
            try:
                result.local = sock.getsockname()[:2]
            except OSError:
                pass
            for _ in range(10000):  # bounded: stray datagrams cannot keep us here
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                try:
                    data, peer = sock.recvfrom(65535)
                except socket.timeout:
                    break
                if peer[0] != ip or peer[1] != dst_port:
                    continue
                if use_marker:
                    if data[:4] != NON_ESP_MARKER:
                        continue  # ESP, not IKE
                    data = data[4:]
                if data[:8] != spi:
                    continue
                answer = parse_ike_answer(data)
                answer.rtt = time.monotonic() - start
                answer.peer = (peer[0], peer[1])
                result.answer, result.rtt, result.status = answer, answer.rtt, "answered"
                break
        except ConnectionRefusedError as exc:
            result.status, result.error = "refused", str(exc)
            result.rtt = time.monotonic() - start
        except OSError as exc:
            result.status, result.error = "error", str(exc)
    finally:
        if own:
            sock.close()
    return result


def exchange(
    dst_addr: str,
    dst_port: int,
    message: bytes,
    *,
    timeout: float = 1.0,
    src_port: int | None = None,
    sock=None,
    marker: bool | None = None,
) -> IkeAnswer | None:
    """Send an IKE message over UDP and return the parsed answer, or None on silence.

    To port 4500 the non-ESP marker is prepended (and stripped from the
    answer).  The socket has DF off, so large messages are IP-fragmented by the
    kernel.  Waits at most ``timeout`` seconds.
    """
    res = probe(dst_addr, dst_port, message, timeout=timeout, src_port=src_port,
                sock=sock, marker=marker)
    return res.answer


# ---------------------------------------------------------------------------
# probes
# ---------------------------------------------------------------------------


def _send_init(gateway: str, port: int, proposals, *, timeout: float, tries: int,
               pad_to: int | None = None, ke_group=None, src_port: int | None = None,
               fragmentation_supported: bool = True) -> ProbeResult:
    """Build a stateless IKE_SA_INIT (decoy KE) for this socket and send it."""
    props = _as_proposals(proposals)
    group = decoy_group(props) if ke_group is None else _as_group(ke_group)
    family, ip = _resolve(gateway)
    result = None
    for _ in range(max(1, tries)):
        sock = _new_socket(family, src_port)
        try:
            sock.connect((ip, port))
            local = sock.getsockname()[:2]
            spi = os.urandom(8)
            msg = build_ike_sa_init(props, group, spi=spi, src=local, dst=(ip, port), pad_to=pad_to,
                                    fragmentation_supported=fragmentation_supported)
            result = probe(ip, port, msg, timeout=timeout, sock=sock)
            if result.answer is not None and result.answer.cookie:
                # The responder is rate-limiting half-open SAs: repeat with its cookie, as
                # a real initiator does; the answer is still stateless on its side.
                msg = build_ike_sa_init(props, group, spi=spi, src=local, dst=(ip, port), pad_to=pad_to,
                                        fragmentation_supported=fragmentation_supported,
                                        cookie=result.answer.cookie)
                result = probe(ip, port, msg, timeout=timeout, sock=sock)
        except OSError as exc:
            result = ProbeResult(port=port, sent=0, status="error", error=str(exc))
        finally:
            sock.close()
        if result.answered:
            break
    return result


def reachability_verdict(udp500: bool, udp4500: bool, fragmented500: bool,
                         fragmented4500: bool | None = None) -> tuple[str, list[str]]:
    """Verdict and all findings from which probes the gateway answered.

    Verdicts: ``none`` (everything answered), ``udp-500-blocked``,
    ``udp-4500-blocked``, ``ip-fragments-dropped``, ``no-response``.
    """
    u500 = udp500 or fragmented500
    findings: list[str] = []
    if not u500 and not udp4500:
        return "no-response", ["no-response"]
    if not u500:
        findings.append("udp-500-blocked")
    if not udp4500:
        findings.append("udp-4500-blocked")
    frag_ok = fragmented500 if u500 else fragmented4500
    if frag_ok is False:
        findings.append("ip-fragments-dropped")
    return (findings[0] if findings else "none"), (findings or ["none"])


_EXPLAIN = {
    "none": "The gateway answered IKE_SA_INIT on UDP 500, on UDP 4500 and when IP-fragmented.",
    "udp-500-blocked": "No answer on UDP 500 while UDP 4500 answers: UDP 500 is filtered.",
    "udp-4500-blocked": "UDP 500 answers but UDP 4500 does not: NAT-T (IKE_AUTH, ESP-in-UDP) "
                        "will fail.",
    "ip-fragments-dropped": "Small IKE_SA_INIT is answered, the same message IP-fragmented is "
                            "not: fragments are dropped on the way (client->gateway). Large "
                            "IKE_AUTH messages will be lost; enable IKEv2 fragmentation "
                            "(RFC 7383).",
    "no-response": "Nothing answered: the gateway is down, unreachable, or all IKE traffic "
                   "is filtered.",
}


def reachability(
    gateway: str,
    *,
    timeout: float = 1.0,
    port: int = IKE_PORT,
    natt_port: int = NATT_PORT,
    big_size: int = 3000,
    proposals=DEFAULT_REACH_PROPOSALS,
    tries: int = 1,
    delay: float = 0.0,
) -> dict:
    """Differential reachability test that explains IKEv2 silence.

    Probes (all stateless IKE_SA_INIT with a decoy KE group):
    (a) small to UDP ``port``, (b) small to UDP ``natt_port`` (non-ESP marker),
    (c) padded to ``big_size`` bytes to UDP ``port`` (IP-fragmented on a 1500
    path) and, only when (a) and (c) are silent but (b) answers, (d) padded to
    UDP ``natt_port``.  An answer counts only when it comes from the gateway
    address itself and echoes the probe's SPI.  Takes at most about
    (3 or 4) x ``tries`` x ``timeout`` seconds.

    Returns ``{"gateway", "verdict", "findings", "explanation", "probes",
    "elapsed_s"}`` with per-probe evidence.  Only the client->gateway
    direction of fragmentation is tested (answers are small).
    """
    t0 = time.monotonic()
    common = dict(timeout=timeout, tries=tries)
    probes: dict[str, ProbeResult] = {}
    probes["udp500"] = _send_init(gateway, port, proposals, **common)
    time.sleep(delay)
    probes["udp4500"] = _send_init(gateway, natt_port, proposals, **common)
    time.sleep(delay)
    probes["fragmented500"] = _send_init(gateway, port, proposals, pad_to=big_size, **common)
    frag4500 = None
    if not probes["udp500"].answered and not probes["fragmented500"].answered \
            and probes["udp4500"].answered:
        time.sleep(delay)
        probes["fragmented4500"] = _send_init(gateway, natt_port, proposals,
                                              pad_to=big_size, **common)
        frag4500 = probes["fragmented4500"].answered
    verdict, findings = reachability_verdict(
        probes["udp500"].answered, probes["udp4500"].answered,
        probes["fragmented500"].answered, frag4500,
    )
    return {
        "gateway": gateway,
        "verdict": verdict,
        "findings": findings,
        "explanation": _EXPLAIN[verdict],
        "probes": {k: v.as_dict() for k, v in probes.items()},
        "elapsed_s": round(time.monotonic() - t0, 3),
    }


def accepted_proposals(
    gateway: str,
    candidates: Iterable = DEFAULT_CANDIDATES,
    *,
    port: int = IKE_PORT,
    timeout: float = 1.0,
    tries: int = 1,
    delay: float = 0.05,
    ke_group=None,
) -> list[dict]:
    """Which candidate proposals the gateway accepts, one stateless probe each.

    Each candidate is offered alone with a decoy KE group (not in the
    candidate): INVALID_KE_PAYLOAD means accepted (``requested_group`` is the
    DH group the gateway wants for it), NO_PROPOSAL_CHOSEN means refused,
    silence gives ``accepted=None``.  Sequential, ``delay`` seconds apart.
    A ``ke_group`` inside the candidate would make an accepting gateway create
    a half-open SA; it is reported as ``state_created=True``.
    """
    results = []
    for i, cand in enumerate(candidates):
        if i:
            time.sleep(delay)
        prop = tf.parse_proposal(cand)
        try:
            windows = prop.windows()
        except ValueError:
            windows = None
        group = decoy_group(prop) if ke_group is None else _as_group(ke_group)
        res = _send_init(gateway, port, prop, timeout=timeout, tries=tries, ke_group=group)
        ans = res.answer
        accepted = None
        note = None
        if ans is not None:
            if ans.kind == "invalid-ke":
                accepted = True
                if ans.requested_group not in prop.dh_groups:
                    note = (f"gateway requested group {ans.requested_group}, "
                            "which the proposal does not contain")
            elif ans.kind == "sa-init-accepted":
                accepted = True
                note = "gateway accepted the KE group: a half-open IKE_SA was created"
            elif ans.kind == "no-proposal-chosen":
                accepted = False
            else:
                note = f"unexpected answer: {ans.notify_names or ans.kind}"
        results.append({
            "proposal": prop.strongswan(),
            "windows": windows,
            "accepted": accepted,
            "kind": ans.kind if ans else None,
            "requested_group": ans.requested_group if ans else None,
            "requested_group_name": ans.requested_group_name if ans else None,
            "ke_group_sent": group,
            "state_created": bool(ans and ans.kind == "sa-init-accepted"),
            "status": res.status,
            "rtt_ms": round(res.rtt * 1000, 2) if res.rtt is not None else None,
            "note": note,
        })
    return results


def preferred_group(
    gateway: str,
    candidates: Iterable = DEFAULT_CANDIDATES,
    *,
    port: int = IKE_PORT,
    timeout: float = 1.0,
    tries: int = 1,
) -> dict:
    """The gateway's preferred DH group among ``candidates``, from one INVALID_KE.

    All candidates go into one SA payload (in the given order) with a decoy KE
    group; the gateway picks by its own preference and names the group in
    INVALID_KE_PAYLOAD.  Returns ``{"group", "group_name", "kind", "matching"}``
    where ``matching`` lists the candidates containing that group.
    """
    props = [tf.parse_proposal(c) for c in candidates]
    res = _send_init(gateway, port, props, timeout=timeout, tries=tries)
    ans = res.answer
    group = ans.requested_group if ans and ans.kind == "invalid-ke" else None
    return {
        "group": group,
        "group_name": tf.dh_group_name(group),
        "kind": ans.kind if ans else None,
        "status": res.status,
        "matching": [p.strongswan() for p in props if group in p.dh_groups],
        "rtt_ms": round(res.rtt * 1000, 2) if res.rtt is not None else None,
    }
