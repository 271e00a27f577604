"""What an IKE_SA_INIT request offers: proposals as an SA payload, the KE group and its value.

Proposals come in strongSwan or Windows spelling or as
:class:`~aovpn_lab.ike.transforms.Proposal`; the SA payload is scapy's IKEv2 layer.
The *decoy* group is a DH group in none of the offered proposals: a responder that
accepts a proposal then answers INVALID_KE_PAYLOAD instead of creating state.
"""

from __future__ import annotations

import os
from typing import Sequence

from scapy.contrib.ikev2 import IKEv2_Proposal, IKEv2_Transform

from . import transforms as tf
from .numbers import PT_NONE, PT_PROPOSAL, PT_TRANSFORM

__all__ = ["as_proposals", "as_group", "decoy_group", "ke_value", "proposal_chain"]

# Decoy KE groups, in order of preference: well-known groups every stack can
# parse first; the first one that is in none of the offered proposals is used.
_DECOY_ORDER = (2, 14, 19, 20, 1, 31, 21, 15, 16, 5, 24)


def as_proposals(proposals) -> list[tf.Proposal]:
    """One proposal or several, parsed; at least one."""
    if isinstance(proposals, (str, tf.Proposal)):
        proposals = [proposals]
    result = [tf.parse_proposal(p) for p in proposals]
    if not result:
        raise ValueError("at least one proposal is needed")
    return result


def as_group(group) -> int:
    """A DH group number from its number or name."""
    if isinstance(group, int):
        return group
    alg = tf.lookup(str(group))
    if alg.type != tf.DH:
        raise ValueError(f"{group!r} is not a DH group")
    return alg.id


def decoy_group(proposals) -> int:
    """A DH group for the KE payload that none of ``proposals`` contains."""
    used = {g for p in as_proposals(proposals) for g in p.dh_groups}
    for g in _DECOY_ORDER:
        if g not in used:
            return g
    raise ValueError("the proposals use every decoy DH group; pass ke_group explicitly")


def ke_value(group: int) -> bytes:
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


def proposal_chain(proposals: Sequence[tf.Proposal]):
    """The proposals numbered 1..n as one chain of scapy IKEv2_Proposal layers."""
    chain = None
    for num, prop in enumerate(proposals, start=1):
        ids = prop.transform_ids()
        trans = None
        for i, (ttype, tid, klen) in enumerate(ids):
            t = IKEv2_Transform(
                next_payload=PT_NONE if i == len(ids) - 1 else PT_TRANSFORM,
                transform_type=ttype,
                transform_id=tid,
                length=12 if klen else 8,
                **({"key_length": klen} if klen else {}),
            )
            trans = t if trans is None else trans / t
        p = IKEv2_Proposal(
            next_payload=PT_NONE if num == len(proposals) else PT_PROPOSAL,
            proposal=num,
            proto=1,
            trans_nb=len(ids),
            trans=trans,
        )
        chain = p if chain is None else chain / p
    return chain

