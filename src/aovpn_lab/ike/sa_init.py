"""A well-formed IKE_SA_INIT request (RFC 7296 1.2), optionally padded to an exact size.

Padding to a size above the path MTU makes the request IP-fragmented on the wire:
the filler is a Vendor ID payload, or for 1-3 missing bytes a lengthened nonce.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import struct
from dataclasses import dataclass

from scapy.contrib.ikev2 import (
    IKEv2,
    IKEv2_KE,
    IKEv2_Nonce,
    IKEv2_Notify,
    IKEv2_SA,
    IKEv2_VendorID,
)

from . import transforms as tf
from .offer import as_group, as_proposals, ke_value, proposal_chain
from .numbers import (
    FLAG_INITIATOR,
    IKE_PORT,
    IKE_SA_INIT,
    MAX_MESSAGE,
    N_COOKIE,
    N_IKEV2_FRAGMENTATION_SUPPORTED,
    N_NAT_DETECTION_DESTINATION_IP,
    N_NAT_DETECTION_SOURCE_IP,
    PAD_VENDOR_ID_PREFIX,
    PT_KE,
    PT_NONCE,
    PT_NONE,
    PT_NOTIFY,
    PT_SA,
    PT_VID,
)

__all__ = ["nat_detection_hash", "build_ike_sa_init"]

_ZERO_SPI = b"\x00" * 8


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


@dataclass(frozen=True)
class _Request:
    """The parts of one request; padding varies only the nonce and the filler."""

    spi: bytes
    proposals: list[tf.Proposal]
    group: int
    ke_data: bytes
    natd: tuple[bytes, bytes] | None
    fragmentation_supported: bool
    cookie: bytes | None

    def payloads(self, nonce: bytes, filler: bytes | None) -> list[tuple[int, object]]:
        """(payload type, scapy layer) in the order they go on the wire."""
        # A COOKIE, when the responder asked for one, must be the first payload.
        payloads: list[tuple[int, object]] = [
            (PT_NOTIFY, IKEv2_Notify(proto=0, type=N_COOKIE, notify=self.cookie)),
        ] if self.cookie else []
        payloads += [
            (PT_SA, IKEv2_SA(prop=proposal_chain(self.proposals))),
            (PT_KE, IKEv2_KE(group=self.group, ke=self.ke_data)),
            (PT_NONCE, IKEv2_Nonce(nonce=nonce)),
        ]
        if self.natd:
            payloads.append(
                (PT_NOTIFY, IKEv2_Notify(proto=0, type=N_NAT_DETECTION_SOURCE_IP, notify=self.natd[0]))
            )
            payloads.append(
                (PT_NOTIFY,
                 IKEv2_Notify(proto=0, type=N_NAT_DETECTION_DESTINATION_IP, notify=self.natd[1]))
            )
        if self.fragmentation_supported:
            payloads.append(
                (PT_NOTIFY, IKEv2_Notify(proto=0, type=N_IKEV2_FRAGMENTATION_SUPPORTED))
            )
        if filler is not None:
            payloads.append((PT_VID, IKEv2_VendorID(vendorID=filler)))
        return payloads

    def message(self, nonce: bytes, filler: bytes | None = None) -> bytes:
        """The IKE header and the payloads, each naming the next one's type."""
        payloads = self.payloads(nonce, filler)
        pkt = IKEv2(
            init_SPI=self.spi,
            resp_SPI=_ZERO_SPI,
            next_payload=payloads[0][0],
            exch_type=IKE_SA_INIT,
            flags=FLAG_INITIATOR,
            id=0,
        )
        for i, (_, pl) in enumerate(payloads):
            pl.next_payload = payloads[i + 1][0] if i + 1 < len(payloads) else PT_NONE
            pkt = pkt / pl
        return bytes(pkt)


def _initiator_spi(spi: bytes | None) -> bytes:
    if spi is None:
        spi = os.urandom(8)
        while spi == _ZERO_SPI:
            spi = os.urandom(8)
    if len(spi) != 8:
        raise ValueError("spi must be 8 bytes")
    if spi == _ZERO_SPI:
        raise ValueError("the initiator SPI must not be zero (RFC 7296 3.1)")
    return spi


def _natd_hashes(spi: bytes, src, dst) -> tuple[bytes, bytes] | None:
    """NAT_DETECTION_SOURCE_IP / _DESTINATION_IP data, when both ends are known."""
    if src is None or dst is None:
        return None
    s_addr, s_port = _split_hostport(src, IKE_PORT)
    d_addr, d_port = _split_hostport(dst, IKE_PORT)
    return (
        nat_detection_hash(spi, _ZERO_SPI, s_addr, s_port),
        nat_detection_hash(spi, _ZERO_SPI, d_addr, d_port),
    )


def _padded(request: _Request, nonce: bytes, own_nonce: bool, pad_to: int | None) -> bytes:
    """The message grown to exactly ``pad_to`` bytes (as it is when ``pad_to`` is None)."""
    msg = request.message(nonce)
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
        msg = request.message(nonce + os.urandom(diff))
    else:
        size = diff - 4
        filler = (PAD_VENDOR_ID_PREFIX * (size // len(PAD_VENDOR_ID_PREFIX) + 1))[:size]
        msg = request.message(nonce, filler)
    assert len(msg) == pad_to, (len(msg), pad_to)
    return msg


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
    props = as_proposals(proposals)
    group = as_group(ke_group)
    spi = _initiator_spi(spi)
    own_nonce = nonce is None
    if own_nonce:
        nonce = os.urandom(32)
    if not 16 <= len(nonce) <= 256:
        raise ValueError("nonce must be 16..256 bytes (RFC 7296 3.9)")
    if ke_data is None:
        ke_data = ke_value(group)
    if pad_to is not None and not 0 < pad_to <= MAX_MESSAGE:
        raise ValueError(f"pad_to must be 1..{MAX_MESSAGE}")
    request = _Request(spi, props, group, ke_data, _natd_hashes(spi, src, dst),
                       fragmentation_supported, cookie)
    return _padded(request, nonce, own_nonce, pad_to)
