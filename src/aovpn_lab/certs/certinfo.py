"""What a network engineer wants to know about one certificate (:class:`CertInfo`)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from aovpn_lab.certs.oids import EKU_LABELS, UPN_OID, eku_name
from aovpn_lab.certs.sizemodel import key_label

__all__ = ["CertInfo", "describe", "extension", "issued_by", "self_signed"]


@dataclass(frozen=True)
class CertInfo:
    """What a network engineer wants to know about one certificate."""

    index: int  # position in the sorted chain, 0 = leaf
    subject: str
    issuer: str
    common_name: str | None
    issuer_common_name: str | None
    serial: str
    der_size: int
    key_type: str  # "RSA", "EC", "Ed25519", ...
    key_size: int | None  # RSA bits / EC field bits
    curve: str | None  # "secp256r1" for EC
    key: str  # "rsa-4096" / "ecdsa-p256" / key type
    signature_algorithm: str
    not_before: dt.datetime
    not_after: dt.datetime
    ekus: tuple[str, ...]  # short names (server_auth, ...) or dotted OIDs
    san_dns: tuple[str, ...]
    san_ip: tuple[str, ...]
    san_email: tuple[str, ...]
    san_upn: tuple[str, ...]
    san_other: tuple[str, ...]
    has_cdp: bool
    cdp_urls: tuple[str, ...]
    has_aia: bool
    ocsp_urls: tuple[str, ...]
    ca_issuers_urls: tuple[str, ...]
    has_policies: bool
    is_ca: bool
    key_usage: tuple[str, ...] | None  # None: no keyUsage extension
    self_signed: bool
    sha1: str
    sha256: str  # what RRAS SstpSvc SHA256CertificateHash expects
    source: str | None = None

    @property
    def sans(self) -> list[str]:
        return (
            [f"DNS:{n}" for n in self.san_dns]
            + [f"IP:{n}" for n in self.san_ip]
            + [f"email:{n}" for n in self.san_email]
            + [f"UPN:{n}" for n in self.san_upn]
            + list(self.san_other)
        )

    @property
    def eku_labels(self) -> list[str]:
        return [EKU_LABELS.get(e, e) for e in self.ekus]


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def extension(cert: x509.Certificate, cls: type) -> Any:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # malformed extension: treat as absent
        return None


def _decode_upn(value: bytes) -> str:
    # DER UTF8String (0x0c), short or long form length
    if len(value) >= 2 and value[0] == 0x0C:
        n = value[1]
        start = 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(value[2 : 2 + k], "big")
            start = 2 + k
        return value[start : start + n].decode("utf-8", "replace")
    return value.hex()


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer`` names and signed ``cert``."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def self_signed(cert: x509.Certificate) -> bool:
    return issued_by(cert, cert)


def _key_facts(cert: x509.Certificate) -> tuple[str, int | None, str | None, str]:
    try:
        key = cert.public_key()
    except (ValueError, TypeError):
        return ("unknown", None, None, "unknown")
    if isinstance(key, rsa.RSAPublicKey):
        return ("RSA", key.key_size, None, f"rsa-{key.key_size}")
    if isinstance(key, ec.EllipticCurvePublicKey):
        try:
            label = key_label(key)
        except ValueError:
            label = f"ec-{key.curve.name}"
        return ("EC", key.curve.key_size, key.curve.name, label)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ("Ed25519", 256, None, "ed25519")
    if isinstance(key, ed448.Ed448PublicKey):
        return ("Ed448", 456, None, "ed448")
    if isinstance(key, dsa.DSAPublicKey):
        return ("DSA", key.key_size, None, f"dsa-{key.key_size}")
    return (type(key).__name__, None, None, type(key).__name__)


def _sig_name(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    return getattr(oid, "_name", None) or oid.dotted_string


def _san_names(san: Any) -> dict[str, tuple[str, ...]]:
    """SubjectAlternativeName entries by kind: dns, ip, email, upn, other."""
    dns: list[str] = []
    ips: list[str] = []
    emails: list[str] = []
    upns: list[str] = []
    others: list[str] = []
    if san is not None:
        for gn in san:
            if isinstance(gn, x509.DNSName):
                dns.append(gn.value)
            elif isinstance(gn, x509.IPAddress):
                ips.append(str(gn.value))
            elif isinstance(gn, x509.RFC822Name):
                emails.append(gn.value)
            elif isinstance(gn, x509.OtherName) and gn.type_id == UPN_OID:
                upns.append(_decode_upn(gn.value))
            elif isinstance(gn, x509.UniformResourceIdentifier):
                others.append(f"URI:{gn.value}")
            else:
                others.append(type(gn).__name__)
    return {"san_dns": tuple(dns), "san_ip": tuple(ips), "san_email": tuple(emails),
            "san_upn": tuple(upns), "san_other": tuple(others)}


def _access_urls(aia: Any, method: x509.ObjectIdentifier) -> tuple[str, ...]:
    return tuple(
        a.access_location.value
        for a in (aia or [])
        if a.access_method == method
        and isinstance(a.access_location, x509.UniformResourceIdentifier)
    )


def _revocation(cert: x509.Certificate) -> dict[str, Any]:
    """Where revocation can be checked and the issuer fetched: CDP and AIA."""
    cdp = extension(cert, x509.CRLDistributionPoints)
    aia = extension(cert, x509.AuthorityInformationAccess)
    cdp_urls = tuple(
        n.value
        for point in (cdp or [])
        for n in (point.full_name or [])
        if isinstance(n, x509.UniformResourceIdentifier)
    )
    return {
        "has_cdp": cdp is not None,
        "cdp_urls": cdp_urls,
        "has_aia": aia is not None,
        "ocsp_urls": _access_urls(aia, x509.AuthorityInformationAccessOID.OCSP),
        "ca_issuers_urls": _access_urls(aia, x509.AuthorityInformationAccessOID.CA_ISSUERS),
    }


def _key_usage(cert: x509.Certificate) -> tuple[str, ...] | None:
    ku = extension(cert, x509.KeyUsage)
    if ku is None:
        return None
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign"]
    return tuple(n for n in names if getattr(ku, n))


def _has_policies(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_oid(ExtensionOID.CERTIFICATE_POLICIES) is not None
    except x509.ExtensionNotFound:
        return False
    except ValueError:
        return True


def describe(cert: x509.Certificate, index: int = 0, source: str | None = None) -> CertInfo:
    """Facts about one certificate (see :class:`CertInfo`)."""
    key_type, key_size, curve, label = _key_facts(cert)
    eku = extension(cert, x509.ExtendedKeyUsage)
    bc = extension(cert, x509.BasicConstraints)
    der = cert.public_bytes(serialization.Encoding.DER)
    return CertInfo(
        index=index,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=_cn(cert.subject),
        issuer_common_name=_cn(cert.issuer),
        serial=format(cert.serial_number, "x"),
        der_size=len(der),
        key_type=key_type,
        key_size=key_size,
        curve=curve,
        key=label,
        signature_algorithm=_sig_name(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        ekus=tuple(eku_name(o) for o in eku) if eku is not None else (),
        **_san_names(extension(cert, x509.SubjectAlternativeName)),
        **_revocation(cert),
        has_policies=_has_policies(cert),
        is_ca=bool(bc and bc.ca),
        key_usage=_key_usage(cert),
        self_signed=self_signed(cert),
        sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),
        sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        source=source,
    )
