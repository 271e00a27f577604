"""A crafted probe's answer, classified into an :class:`IkeAnswer`.

The fixed header is read from its RFC 7296 3.1 offsets (so a message scapy cannot
dissect still says who sent it); the payload chain is walked by :mod:`.wire`, the one
IKE decoding the capture diagnosis uses too.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, field

from scapy.contrib.ikev2 import (
    IKEv2,
    IKEv2_KE,
    IKEv2_Notify,
    IKEv2_Proposal,
    IKEv2_SA,
    IKEv2_Transform,
    IKEv2_VendorID,
)

from . import transforms as tf
from . import wire
from .numbers import (
    FLAG_RESPONSE,
    HEADER_LEN,
    IKE_SA_INIT,
    N_COOKIE,
    N_IKEV2_FRAGMENTATION_SUPPORTED,
    N_INVALID_KE_PAYLOAD,
    N_NO_PROPOSAL_CHOSEN,
    NON_ESP_MARKER,
)

__all__ = ["IkeAnswer", "parse_ike_answer"]


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
        return [wire.notify_name(t) for t in self.notify_types]

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


def _header(data: bytes) -> IkeAnswer:
    """The answer as far as the fixed header tells (kind still ``other``)."""
    exch, flags = data[18], data[19]
    (declared,) = struct.unpack("!I", data[24:28])
    ans = IkeAnswer(
        kind="other",
        exchange=exch,
        exchange_name=wire.exchange_name(exch),
        is_response=bool(flags & FLAG_RESPONSE),
        initiator_spi=data[:8],
        responder_spi=data[8:16],
        message_id=struct.unpack("!I", data[20:24])[0],
        size=len(data),
    )
    if declared != len(data):
        ans.error = f"header length {declared} != {len(data)} bytes received"
    return ans


def _read_notify(ans: IkeAnswer, pl) -> None:
    ans.notify_types.append(int(pl.type))
    if int(pl.type) == N_COOKIE:
        ans.cookie = bytes(pl.notify or b"")
    if int(pl.type) == N_INVALID_KE_PAYLOAD:
        nd = bytes(pl.notify or b"")
        if len(nd) >= 2:
            ans.requested_group = struct.unpack("!H", nd[:2])[0]


def _read_payloads(ans: IkeAnswer, data: bytes) -> tuple[bool, bool]:
    """Fill ``ans`` from the payload chain; whether it had an SA and a KE payload."""
    has_sa = has_ke = False
    try:
        for _ptype, pl in wire.payload_chain(IKEv2(data)):
            if isinstance(pl, IKEv2_Notify):
                _read_notify(ans, pl)
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
    except Exception as exc:  # scapy on malformed input
        ans.error = f"malformed payloads: {exc!r}"
    return has_sa, has_ke


def parse_ike_answer(data: bytes) -> IkeAnswer:
    """Parse an IKE message (a leading non-ESP marker is stripped) into an IkeAnswer.

    Never raises for malformed input: such data gives ``kind='other'`` with
    ``error`` set.
    """
    data = bytes(data)
    if len(data) >= 4 + HEADER_LEN and data[:4] == NON_ESP_MARKER:
        data = data[4:]  # an IKE initiator SPI is never zero, so this is the marker
    if len(data) < HEADER_LEN:
        return _other(data, f"too short for an IKE header ({len(data)} bytes)")
    version = data[17]
    if version >> 4 != 2:
        return _other(data, f"not IKEv2 (version byte 0x{version:02x})")
    ans = _header(data)
    has_sa, has_ke = _read_payloads(ans, data)
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

