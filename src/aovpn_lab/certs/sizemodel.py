"""How big IKE_AUTH gets, and how many IP fragments that makes.

>>> from aovpn_lab.certs.sizemodel import predict_ike_auth_size, ip_fragments_needed
>>> n = predict_ike_auth_size([1770, 1700, 1700], key="rsa-4096", role="responder")
>>> ip_fragments_needed(n)          # 5 at MTU 1500: dropped by fragment-filtering firewalls
5

The model (sizes in bytes; every IKEv2 payload has a 4-byte generic header, RFC 7296):

=====================  ======================================================================
IKE header             28
SK (Encrypted)         4 header + IV + encrypted inner payloads + padding + pad-length byte
                       + ICV. AES-CBC + HMAC-SHA2-256-128 (RRAS "standard" set, the default):
                       IV 16, inner + 1 rounded up to 16, ICV 16. AES-GCM-16: IV 8, no block
                       padding (1 pad-length byte), ICV 16.
IDi / IDr              4 + 4 (ID type, reserved) + ID data (``id_len``; an FQDN such as
                       vpn.example.net is ~15-25, an ASN.1 DN 60-150)
CERT                   per certificate SENT (leaf + intermediates, never the root):
                       4 + 1 (encoding) + DER size
CERTREQ                initiator only: 4 + 1 + 20 (SHA-1 of each trusted CA's key) per CA
AUTH                   4 + 4 + authentication data. RFC 7427 digital signature (what
                       strongSwan 5.9 sends): 1 + AlgorithmIdentifier (12 for ECDSA,
                       15 for sha256WithRSAEncryption) + signature (RSA: modulus bytes;
                       ECDSA: DER SEQUENCE of r, s, ~71 for P-256, ~103 for P-384, ~139 for
                       P-521). "classic" (RFC 7296 methods 1 / 9-11, Windows): the bare
                       signature, ECDSA as fixed r||s. PSK: prf output, 32 for SHA-256.
SA                     one ESP proposal (4 + 8 + SPI 4 + encr 12 + integ 8 + ESN 8) = 44;
                       ``sa_bytes`` for longer initiator proposal lists
TSi, TSr               4 + 4 + 16 per IPv4 range = 24 each (IPv6 range: 40)
Notify                 8 each (+ data), as strongSwan 5.9 with swanctl defaults sends them.
                       Initiator: INITIAL_CONTACT, MOBIKE_SUPPORTED,
                       NO_ADDITIONAL_ADDRESSES, MULTIPLE_AUTH_SUPPORTED,
                       EAP_ONLY_AUTHENTICATION, IKE_MESSAGE_ID_SYNC_SUPPORTED = 48.
                       Responder: MOBIKE_SUPPORTED, NO_ADDITIONAL_ADDRESSES = 16;
                       AUTH_LIFETIME (12) only with ``auth_lifetime`` (reauthentication
                       configured). ADDITIONAL_IP4_ADDRESS is 12 per extra address
                       (``additional_addresses``, default 0).
CP                     ``virtual_ip``: initiator CFG_REQUEST for an IPv4 address and DNS
                       4 + 4 + 2 * 4 = 16; responder CFG_REPLY with both filled 4 + 4 +
                       8 + 8 = 24
EAP                    EAP methods: the responder's first IKE_AUTH adds EAP (4 + 5 for an
                       EAP-Request/Identity, 4 + 6 for an EAP-TLS Start); the initiator's
                       first IKE_AUTH then carries neither CERT nor AUTH.
=====================  ======================================================================

The result is the IKE message as it appears in the UDP payload, WITHOUT the 4-byte non-ESP
marker that precedes it on port 4500; :func:`ip_fragments_needed` adds that marker, the UDP
header (8) and the IP header (20 for IPv4; 40 + 8-byte fragment header for IPv6).

Calibration (strongSwan 5.9.8, docs/domain.md, "Certificates"): for the certificates that
``profiles/certificates.yml`` produces, FQDN IDs of ~15-20 bytes, a virtual IP and
AES-CBC/SHA-256 the model predicts (see tests/unit/test_certs_sizemodel.py)
ECDSA P-256 single CA 848 B initiator / 768 B responder and RSA-4096 root + 2
intermediates 5936 B / 5888 B to within a few percent. What it does not know: the
exact IDs, proposals, extra notifies, and CBC padding (0..15 bytes). Treat it as +-10 %.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

IKE_HEADER = 28
GENERIC_PAYLOAD_HEADER = 4
NON_ESP_MARKER = 4
UDP_HEADER = 8
IPV4_HEADER = 20
IPV6_HEADER = 40
IPV6_FRAGMENT_HEADER = 8
NATT_PORT = 4500

AUTH_METHODS = ("pubkey", "psk", "eap-tls", "eap-mschapv2", "peap")
ROLES = ("initiator", "responder")

FRAGMENTATION_ADVICE = "needs IKE fragmentation (RFC 7383) or smaller certificates"

_CIPHERS = {
    # name: (iv, block size for padding, icv)
    "aes-cbc": (16, 16, 16),  # AES-CBC + HMAC-SHA2-256-128
    "aes-cbc-sha1": (16, 16, 12),  # AES-CBC + HMAC-SHA1-96 (RRAS legacy default: 3DES has iv 8)
    "3des-sha1": (8, 8, 12),
    "aes-gcm": (8, 1, 16),  # AES-GCM with 16-byte ICV
}
# (AlgorithmIdentifier DER length for RFC 7427, average DER signature length, raw r||s length)
_ECDSA = {"p256": (12, 71, 64), "p384": (12, 103, 96), "p521": (12, 139, 132)}
_CURVE_ALIASES = {
    "p256": "p256", "p-256": "p256", "secp256r1": "p256", "prime256v1": "p256",
    "p384": "p384", "p-384": "p384", "secp384r1": "p384",
    "p521": "p521", "p-521": "p521", "secp521r1": "p521",
}
_RSA_ALGID = 15  # sha256WithRSAEncryption with NULL parameters


@dataclass(frozen=True)
class IkeAuthEstimate:
    """The predicted IKE_AUTH size with its parts (for reports: the evidence)."""

    size: int
    parts: dict[str, int] = field(default_factory=dict)
    role: str = "responder"
    auth_method: str = "pubkey"
    key: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "role": self.role, "auth_method": self.auth_method, "key": self.key,
                "parts": dict(self.parts)}


def key_label(key: Any) -> str:
    """Normalise a key description to ``rsa-<bits>`` / ``ecdsa-p256|p384|p521``.

    Accepts those strings (also ``ec-p256``, ``ecdsa-secp384r1``, ``rsa4096``), or a
    cryptography public/private key object.
    """
    if not isinstance(key, str):
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
            return f"rsa-{key.key_size}"
        if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
            curve = _CURVE_ALIASES.get(key.curve.name)
            if curve:
                return f"ecdsa-{curve}"
            raise ValueError(f"unsupported EC curve {key.curve.name}")
        raise ValueError(f"unsupported key {key!r}: expected e.g. 'rsa-2048', 'ecdsa-p256' or a key object")
    text = key.strip().lower().replace("_", "-")
    if text.startswith("rsa"):
        bits = text[3:].lstrip("-")
        if bits.isdigit() and int(bits) >= 512:
            return f"rsa-{int(bits)}"
    for prefix in ("ecdsa-", "ec-", "ecdsa", "ec"):
        if text.startswith(prefix):
            curve = _CURVE_ALIASES.get(text[len(prefix):])
            if curve:
                return f"ecdsa-{curve}"
    raise ValueError(f"unsupported key {key!r}: expected e.g. 'rsa-2048', 'rsa-4096', 'ecdsa-p256', 'ecdsa-p384'")


def auth_data_size(key: Any, signature_encoding: str = "rfc7427") -> int:
    """Length of the AUTH payload's authentication data for a signature with ``key``."""
    label = key_label(key)
    if label.startswith("rsa-"):
        sig = math.ceil(int(label[4:]) / 8)
        return sig + (1 + _RSA_ALGID if signature_encoding == "rfc7427" else 0)
    algid, der_sig, raw_sig = _ECDSA[label[6:]]
    if signature_encoding == "rfc7427":
        return 1 + algid + der_sig
    return raw_sig


def _check_model(auth_method: str, role: str, cipher: str, signature_encoding: str) -> None:
    if auth_method not in AUTH_METHODS:
        raise ValueError(f"unknown auth_method {auth_method!r} (known: {', '.join(AUTH_METHODS)})")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known: initiator, responder)")
    if cipher not in _CIPHERS:
        raise ValueError(f"unknown cipher {cipher!r} (known: {', '.join(_CIPHERS)})")
    if signature_encoding not in ("rfc7427", "classic"):
        raise ValueError("signature_encoding must be 'rfc7427' or 'classic'")


def _initiator_parts(parts: dict[str, int], auth_method: str, certreq_cas: int,
                     peer_id_len: int | None, virtual_ip: bool) -> None:
    h = GENERIC_PAYLOAD_HEADER
    if auth_method != "psk" and certreq_cas > 0:
        parts["CERTREQ"] = h + 1 + 20 * certreq_cas
    if peer_id_len is not None:
        parts["IDr"] = h + 4 + peer_id_len
    parts["N(INITIAL_CONTACT,MOBIKE_SUP,NO_ADD_ADDR,MULT_AUTH,EAP_ONLY,MSGID_SYN_SUP)"] = 6 * 8
    if virtual_ip:
        parts["CP(CFG_REQUEST)"] = h + 4 + 2 * 4


def _responder_parts(parts: dict[str, int], auth_method: str, auth_lifetime: bool,
                     virtual_ip: bool, eap: bool) -> None:
    h = GENERIC_PAYLOAD_HEADER
    parts["N(MOBIKE_SUP,NO_ADD_ADDR)"] = 2 * 8
    if auth_lifetime:
        parts["N(AUTH_LIFETIME)"] = 12
    if virtual_ip:
        parts["CP(CFG_REPLY)"] = h + 4 + 2 * 8
    if eap:
        parts["EAP"] = h + (6 if auth_method == "eap-tls" else 5)


def ike_auth_breakdown(
    chain_der_sizes: Sequence[int] | Iterable[int],
    auth_method: str = "pubkey",
    key: Any = "ecdsa-p256",
    *,
    role: str = "responder",
    cipher: str = "aes-cbc",
    signature_encoding: str = "rfc7427",
    id_len: int = 18,
    peer_id_len: int | None = 15,
    certreq_cas: int = 1,
    virtual_ip: bool = True,
    sa_bytes: int = 44,
    ts_ranges: int = 1,
    additional_addresses: int = 0,
    auth_lifetime: bool = False,
    extra_bytes: int = 0,
) -> IkeAuthEstimate:
    """Predict the first IKE_AUTH message of ``role``; see the module docstring for the model.

    ``chain_der_sizes``: DER sizes of the certificates this side SENDS, leaf first, root
    excluded. ``peer_id_len``: initiator only, the IDr it proposes (None: no IDr sent).
    """
    _check_model(auth_method, role, cipher, signature_encoding)
    sizes = [int(s) for s in chain_der_sizes]
    if any(s <= 0 for s in sizes):
        raise ValueError(f"certificate sizes must be positive, got {sizes}")
    h = GENERIC_PAYLOAD_HEADER
    parts: dict[str, int] = {}
    parts["ID" + ("i" if role == "initiator" else "r")] = h + 4 + id_len
    eap = auth_method != "pubkey" and auth_method != "psk"
    sends_auth = not (eap and role == "initiator")
    if auth_method == "psk":
        parts["AUTH"] = h + 4 + 32
    elif sends_auth:
        for i, s in enumerate(sizes):
            parts[f"CERT[{i}]"] = h + 1 + s
        parts["AUTH"] = h + 4 + auth_data_size(key, signature_encoding)
    if role == "initiator":
        _initiator_parts(parts, auth_method, certreq_cas, peer_id_len, virtual_ip)
    else:
        _responder_parts(parts, auth_method, auth_lifetime, virtual_ip, eap)
    if additional_addresses:
        parts["N(ADDITIONAL_IP4_ADDRESS)"] = 12 * additional_addresses
    parts["SA"] = sa_bytes
    parts["TSi+TSr"] = 2 * (h + 4 + 16 * ts_ranges)
    if extra_bytes:
        parts["extra"] = extra_bytes
    inner = sum(parts.values())
    iv, block, icv = _CIPHERS[cipher]
    padded = math.ceil((inner + 1) / block) * block
    parts["SK(header,IV,padding,ICV)"] = h + iv + (padded - inner) + icv
    parts["IKE header"] = IKE_HEADER
    label = key_label(key) if auth_method != "psk" else "psk"
    return IkeAuthEstimate(size=sum(parts.values()), parts=parts, role=role, auth_method=auth_method, key=label)


def predict_ike_auth_size(
    chain_der_sizes: Sequence[int] | Iterable[int],
    auth_method: str = "pubkey",
    key: Any = "ecdsa-p256",
    **options: Any,
) -> int:
    """Predicted IKE_AUTH size in bytes (UDP payload, no non-ESP marker).

    ``chain_der_sizes`` are the DER sizes of the certificates sent (leaf first, no root);
    ``key`` is the leaf's key (``"rsa-4096"``, ``"ecdsa-p256"`` or a key object). Keyword
    options are those of :func:`ike_auth_breakdown` (``role="responder"`` by default,
    ``cipher``, ``id_len``, ``virtual_ip``, ...).
    """
    return ike_auth_breakdown(chain_der_sizes, auth_method, key, **options).size


def ip_fragments_needed(message_size: int, mtu: int = 1500, udp_port: int = NATT_PORT, *, ip_version: int = 4) -> int:
    """IP packets needed to carry an IKE message of ``message_size`` bytes (1 = unfragmented).

    Counts the non-ESP marker (4 bytes, port 4500 only), the UDP header (8) and the IP
    header (IPv4 20; IPv6 40 plus an 8-byte fragment header in every fragment). Fragment
    payloads are multiples of 8 bytes: 1480 per fragment at MTU 1500 over IPv4.
    """
    if message_size <= 0:
        raise ValueError(f"message_size must be positive, got {message_size}")
    if ip_version not in (4, 6):
        raise ValueError(f"ip_version must be 4 or 6, got {ip_version}")
    ip_header = IPV4_HEADER if ip_version == 4 else IPV6_HEADER
    min_mtu = 68 if ip_version == 4 else 1280
    if mtu < min_mtu:
        raise ValueError(f"mtu {mtu} is below the IPv{ip_version} minimum {min_mtu}")
    payload = message_size + UDP_HEADER + (NON_ESP_MARKER if udp_port == NATT_PORT else 0)
    if payload + ip_header <= mtu:
        return 1
    per_fragment = (mtu - ip_header - (IPV6_FRAGMENT_HEADER if ip_version == 6 else 0)) // 8 * 8
    return math.ceil(payload / per_fragment)


def needs_fragmentation(message_size: int, mtu: int = 1500, udp_port: int = NATT_PORT, *, ip_version: int = 4) -> bool:
    """True when the message does not fit one IP packet on a path with this MTU."""
    return ip_fragments_needed(message_size, mtu, udp_port, ip_version=ip_version) > 1
