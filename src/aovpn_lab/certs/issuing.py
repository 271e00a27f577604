"""The lab PKI's certificates: a root, its intermediates, and the leaves they sign.

Everything comes from a :class:`~aovpn_lab.certs.profiles.CertProfile`: subject names,
key types, validity, key usage, EKU, SAN kinds and the revocation extensions (CDP, AIA,
policies) with ``{ca}`` replaced by the issuing CA's name.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from aovpn_lab.certs.oids import UPN_OID, eku_oid
from aovpn_lab.certs.profiles import CaSpec, CertProfile, ExtensionSpec, KeySpec

__all__ = ["BACKDATE", "PrivateKey", "Issuer", "generate_keys", "ca_validity_days", "issue_cas", "leaf_cert"]

#: Certificates are back-dated this much, for peers whose clocks run a little behind.
BACKDATE = dt.timedelta(hours=1)

_SUBJECT_OIDS = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class Issuer(NamedTuple):
    """A CA that signs: its certificate, its key, and its name in URLs (``{ca}``)."""

    cert: x509.Certificate
    key: PrivateKey
    slug: str


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _name(attrs: dict[str, str], cn: str) -> x509.Name:
    rdns = [x509.NameAttribute(_SUBJECT_OIDS[k], v) for k, v in attrs.items() if k != "CN"]
    rdns.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(rdns)


def _der_utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    n = len(data)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x0c" + length + data


def _revocation_extensions(builder: x509.CertificateBuilder, spec: ExtensionSpec, issuer_slug: str) -> x509.CertificateBuilder:
    fill = lambda url: url.replace("{ca}", issuer_slug)  # noqa: E731
    if spec.crl_distribution_points:
        points = [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(fill(u))], relative_name=None, reasons=None, crl_issuer=None
            )
            for u in spec.crl_distribution_points
        ]
        builder = builder.add_extension(x509.CRLDistributionPoints(points), critical=False)
    access = [
        x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(fill(u)))
        for u in spec.ocsp
    ] + [
        x509.AccessDescription(x509.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(fill(u)))
        for u in spec.ca_issuers
    ]
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    if spec.policies:
        infos = []
        for p in spec.policies:
            qualifiers: list[str | x509.UserNotice] = []
            if p.cps:
                qualifiers.append(fill(p.cps))
            if p.notice:
                qualifiers.append(x509.UserNotice(notice_reference=None, explicit_text=p.notice))
            infos.append(x509.PolicyInformation(x509.ObjectIdentifier(p.oid), qualifiers or None))
        builder = builder.add_extension(x509.CertificatePolicies(infos), critical=False)
    return builder


def _base_builder(subject: x509.Name, issuer: x509.Name, public_key: Any, now: dt.datetime, days: int) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _aki(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _ca_cert(
    spec: CaSpec,
    key: PrivateKey,
    issuer: Issuer | None,
    path_length: int | None,
    extensions: ExtensionSpec | None,
    profile: CertProfile,
    now: dt.datetime,
    days: int,
) -> x509.Certificate:
    subject = _name(spec.subject, spec.name)
    issuer_name = issuer.cert.subject if issuer else subject
    b = _base_builder(subject, issuer_name, key.public_key(), now, days)
    b = b.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    b = b.add_extension(
        x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
        ),
        critical=True,
    )
    if issuer:
        b = b.add_extension(_aki(issuer.cert), critical=False)
        if extensions and not extensions.empty:
            b = _revocation_extensions(b, extensions, issuer.slug)
    return b.sign(issuer.key if issuer else key, profile.hash_algorithm())


def _leaf_key_usage(names) -> x509.KeyUsage:
    usages = set(names)
    return x509.KeyUsage(
        digital_signature="digital_signature" in usages,
        content_commitment="content_commitment" in usages,
        key_encipherment="key_encipherment" in usages,
        data_encipherment="data_encipherment" in usages,
        key_agreement="key_agreement" in usages,
        key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
    )


def _subject_alt_names(name: str, kinds, upn_suffix: str | None) -> list[x509.GeneralName]:
    """The SAN entries of the role's kinds: dns (an IP address for an address), upn, email."""
    sans: list[x509.GeneralName] = []
    upn = name if "@" in name else (f"{name}@{upn_suffix}" if upn_suffix else None)
    for kind in kinds:
        if kind == "dns":
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        elif kind == "upn" and upn:
            sans.append(x509.OtherName(UPN_OID, _der_utf8(upn)))
        elif kind == "email" and upn:
            sans.append(x509.RFC822Name(upn))
    return sans


def leaf_cert(
    name: str,
    role: str,
    key: PrivateKey,
    issuer: Issuer,
    profile: CertProfile,
    now: dt.datetime,
    days: int,
) -> x509.Certificate:
    role_spec = profile.roles[role]
    b = _base_builder(_name(profile.leaf.subject, name), issuer.cert.subject, key.public_key(), now, days)
    b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    b = b.add_extension(_leaf_key_usage(role_spec.key_usage["rsa" if isinstance(key, rsa.RSAPrivateKey) else "ec"]),
                        critical=True)
    if role_spec.eku:
        b = b.add_extension(x509.ExtendedKeyUsage([eku_oid(e) for e in role_spec.eku]), critical=False)
    sans = _subject_alt_names(name, role_spec.san, profile.upn_suffix)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    b = b.add_extension(_aki(issuer.cert), critical=False)
    if not profile.leaf_extensions.empty:
        b = _revocation_extensions(b, profile.leaf_extensions, issuer.slug)
    return b.sign(issuer.key, profile.hash_algorithm())


def generate_keys(specs: list[KeySpec]) -> list[PrivateKey]:
    """One private key per spec, in order."""
    # RSA-4096 generation dominates the run time and releases the GIL: use threads.
    if sum(1 for s in specs if s.type == "rsa") < 2:
        return [s.generate() for s in specs]
    with ThreadPoolExecutor(max_workers=min(len(specs), os.cpu_count() or 2, 8)) as pool:
        return list(pool.map(lambda s: s.generate(), specs))


def ca_validity_days(cas: list[CaSpec], leaf_days: int) -> list[int]:
    """Days of validity per CA, root first."""
    # Each CA outlives what it signs: its own configured validity, but at least one day
    # longer than the longest-lived certificate below it.
    ca_days: list[int] = []
    floor = leaf_days
    for spec in reversed(cas):
        floor = max(spec.validity_days, floor + 1)
        ca_days.append(floor)
    ca_days.reverse()
    return ca_days


def issue_cas(prof: CertProfile, ca_keys: list[PrivateKey], now: dt.datetime, leaf_days: int
              ) -> tuple[x509.Certificate, list[x509.Certificate], Issuer]:
    """The root, the intermediates root-side first, and the CA that signs the leaves."""
    ca_days = ca_validity_days([prof.root, *prof.intermediates], leaf_days)
    root = _ca_cert(prof.root, ca_keys[0], None, None, None, prof, now, ca_days[0])
    issuer = Issuer(root, ca_keys[0], _slug(prof.root.name))
    intermediates: list[x509.Certificate] = []
    n = len(prof.intermediates)
    for i, spec in enumerate(prof.intermediates):
        cert = _ca_cert(spec, ca_keys[i + 1], issuer, n - 1 - i, prof.intermediate_extensions, prof, now, ca_days[i + 1])
        intermediates.append(cert)
        issuer = Issuer(cert, ca_keys[i + 1], _slug(spec.name))
    return root, intermediates, issuer
