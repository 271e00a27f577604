"""Inspect a certificate chain against the Always On VPN certificate requirements.

Example (the "large" lab profile's gateway)::

    from aovpn_lab.certs.inspect import load_certificates, inspect_chain, render_text
    certs = load_certificates("vpn.example.net.fullchain.pem")
    report = inspect_chain(certs, dial_name="vpn.example.net", role="ikev2-server")
    report.failed, report.ike_auth.size, report.ip_fragments   # (False, 6080, 5)
    print(render_text(report))

Requirements checked (docs/domain.md, "Certificates" and "Why deployments break"); every
finding has a stable ``code``, a severity (``fail`` = requirement not met, ``warn`` =
recommended or risky, ``info``) and names the certificate it is about:

- ``eku-server-auth-missing`` (fail, servers): no Server Authentication EKU 1.3.6.1.5.5.7.3.1
- ``eku-ike-intermediate-missing`` (warn, ikev2-server): no IP security IKE intermediate
  1.3.6.1.5.5.8.2.2 (recommended)
- ``eku-client-auth-missing`` (fail, client)
- ``name-mismatch`` (fail): neither SAN nor subject CN matches the dial name;
  ``name-cn-only`` / ``name-cn-differs`` (warn): only one of the two matches
- ``expired`` / ``not-yet-valid`` (fail), ``expires-soon`` (warn, < 30 days)
- ``chain-broken`` (fail): a certificate's issuer is not the next one, a signature does
  not verify, or a certificate does not belong to the leaf's chain
- ``ike-fragmentation-needed`` (warn, IKEv2 roles): the predicted IKE_AUTH exceeds the path
  MTU: "needs IKE fragmentation (RFC 7383) or smaller certificates"; the message says why
  (RSA key > 2048 bits, number of intermediates)
- ``key-usage-digital-signature-missing`` (fail), ``rsa-key-too-small`` (fail, < 2048),
  ``sha1-signature`` (warn), ``leaf-is-ca`` (warn), ``sstp-rsa-key`` (info: ECDSA is
  recommended for SSTP), ``sstp-no-revocation-info`` (warn), ``root-included`` (info),
  ``root-not-included`` (info), ``ike-size-unknown`` (info), ``chain-empty`` (fail)
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtensionOID, NameOID

from aovpn_lab.certs.errors import CertificateInputError
from aovpn_lab.findings import FindingsView
from aovpn_lab.certs.oids import EKU_LABELS, EKU_NAMES, UPN_OID, eku_name
from aovpn_lab.certs.sizemodel import (
    FRAGMENTATION_ADVICE,
    IkeAuthEstimate,
    ike_auth_breakdown,
    ip_fragments_needed,
    key_label,
    predict_ike_auth_size,
)

Role = Literal["ikev2-server", "sstp-server", "client"]
ROLES: tuple[str, ...] = ("ikev2-server", "sstp-server", "client")
SEVERITIES = ("fail", "warn", "info")
EXPIRES_SOON = dt.timedelta(days=30)

_EXPECTED = "expected an X.509 certificate: PEM (-----BEGIN CERTIFICATE-----), DER, or PKCS#7 (.p7b)"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----\s*(.*?)-----END \1-----", re.S)


# ------------------------------------------------------------------------------ loading


def load_certificates(path: str | Path) -> list[x509.Certificate]:
    """Certificates in one file: PEM (one or several blocks), DER, or PKCS#7 PEM/DER.

    Raises :class:`CertificateInputError` naming the file and what was expected when the
    file is missing, empty, or holds no certificate (a private key, a CSR, random bytes).
    Non-certificate PEM blocks next to certificates (e.g. a key in a HAProxy bundle) are
    ignored; their content is never echoed.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise CertificateInputError(p, f"is a directory; {_EXPECTED}") from None
    except OSError as exc:
        raise CertificateInputError(p, f"cannot read ({exc.strerror or exc})") from None
    if not data.strip():
        raise CertificateInputError(p, f"is empty; {_EXPECTED}")
    if b"-----BEGIN " in data:
        return _load_pem(p, data)
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        pass
    try:
        certs = pkcs7.load_der_pkcs7_certificates(data)
    except ValueError:
        certs = []
    if certs:
        return list(certs)
    hint = ""
    if data[:1] == b"\x30":
        hint = " (DER data, but not a certificate: a key, CSR or PKCS#12?)"
    elif _looks_like_text(data):
        hint = " (a text file without PEM blocks)"
    raise CertificateInputError(p, f"is not a certificate{hint}; {_EXPECTED}")


def _looks_like_text(data: bytes) -> bool:
    sample = data[:512]
    return all(b in b"\t\r\n" or 32 <= b < 127 for b in sample)


def _load_pem(p: Path, data: bytes) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    other: list[str] = []
    for n, m in enumerate(_PEM_BLOCK.finditer(data), start=1):
        label = m.group(1).decode("ascii", "replace")
        block = m.group(0)
        if label in ("CERTIFICATE", "X509 CERTIFICATE"):
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                raise CertificateInputError(p, f"PEM block {n} ({label}) is not a valid certificate") from None
        elif label == "PKCS7":
            try:
                certs.extend(pkcs7.load_pem_pkcs7_certificates(block))
            except ValueError:
                raise CertificateInputError(p, f"PEM block {n} (PKCS7) holds no readable certificate") from None
        else:
            other.append(label)
    if not certs:
        found = f"holds {', '.join(sorted(set(other)))}" if other else "has a malformed PEM block"
        raise CertificateInputError(p, f"{found}, not a certificate; {_EXPECTED}")
    return certs


def load_files(paths: Iterable[str | Path]) -> tuple[list[x509.Certificate], list[str]]:
    """Certificates of several files, in order, with the file each came from."""
    certs: list[x509.Certificate] = []
    sources: list[str] = []
    for path in paths:
        loaded = load_certificates(path)
        certs.extend(loaded)
        sources.extend(str(path) for _ in loaded)
    return certs, sources


# ------------------------------------------------------------------------------ reports


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


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # "fail" | "warn" | "info"
    message: str
    cert: int | None = None  # index in ChainReport.certs


@dataclass(frozen=True)
class ChainReport(FindingsView):
    role: str
    dial_name: str | None
    mtu: int
    certs: list[CertInfo]
    findings: list[Finding]
    #: DER sizes of what an IKEv2 peer sends: leaf + intermediates (self-signed roots dropped)
    sent_der_sizes: list[int] = field(default_factory=list)
    ike_auth: IkeAuthEstimate | None = None
    ip_fragments: int | None = None
    needs_ike_fragmentation: bool = False
    checked_at: dt.datetime | None = None

    @property
    def length(self) -> int:
        return len(self.certs)

    @property
    def total_der_bytes(self) -> int:
        return sum(c.der_size for c in self.certs)

    @property
    def leaf(self) -> CertInfo | None:
        return self.certs[0] if self.certs else None


# --------------------------------------------------------------------------- inspection


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def _ext(cert: x509.Certificate, cls: type) -> Any:
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


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer`` names and signed ``cert``."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _name_issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Names (and key identifiers, when both are present) say ``issuer`` issued ``cert``."""
    if cert.issuer != issuer.subject:
        return False
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    ski = _ext(issuer, x509.SubjectKeyIdentifier)
    if aki is not None and ski is not None and aki.key_identifier is not None:
        return aki.key_identifier == ski.digest
    return True


def _self_signed(cert: x509.Certificate) -> bool:
    return _issued_by(cert, cert)


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


def describe(cert: x509.Certificate, index: int = 0, source: str | None = None) -> CertInfo:
    """Facts about one certificate (see :class:`CertInfo`)."""
    key_type, key_size, curve, label = _key_facts(cert)
    eku = _ext(cert, x509.ExtendedKeyUsage)
    san = _ext(cert, x509.SubjectAlternativeName)
    cdp = _ext(cert, x509.CRLDistributionPoints)
    aia = _ext(cert, x509.AuthorityInformationAccess)
    bc = _ext(cert, x509.BasicConstraints)
    ku = _ext(cert, x509.KeyUsage)
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
    cdp_urls = tuple(
        n.value
        for point in (cdp or [])
        for n in (point.full_name or [])
        if isinstance(n, x509.UniformResourceIdentifier)
    )
    ocsp = tuple(
        a.access_location.value
        for a in (aia or [])
        if a.access_method == x509.AuthorityInformationAccessOID.OCSP
        and isinstance(a.access_location, x509.UniformResourceIdentifier)
    )
    issuers = tuple(
        a.access_location.value
        for a in (aia or [])
        if a.access_method == x509.AuthorityInformationAccessOID.CA_ISSUERS
        and isinstance(a.access_location, x509.UniformResourceIdentifier)
    )
    key_usage: tuple[str, ...] | None = None
    if ku is not None:
        names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                 "key_agreement", "key_cert_sign", "crl_sign"]
        key_usage = tuple(n for n in names if getattr(ku, n))
    try:
        has_policies = cert.extensions.get_extension_for_oid(ExtensionOID.CERTIFICATE_POLICIES) is not None
    except x509.ExtensionNotFound:
        has_policies = False
    except ValueError:
        has_policies = True
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
        san_dns=tuple(dns),
        san_ip=tuple(ips),
        san_email=tuple(emails),
        san_upn=tuple(upns),
        san_other=tuple(others),
        has_cdp=cdp is not None,
        cdp_urls=cdp_urls,
        has_aia=aia is not None,
        ocsp_urls=ocsp,
        ca_issuers_urls=issuers,
        has_policies=has_policies,
        is_ca=bool(bc and bc.ca),
        key_usage=key_usage,
        self_signed=_self_signed(cert),
        sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),
        sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        source=source,
    )


def _sort_leaf_first(certs: list[x509.Certificate]) -> tuple[list[int], list[int]]:
    """Indices of the leaf's chain in order (leaf first), and of certificates not in it."""
    n = len(certs)
    if n == 0:
        return [], []
    issues_other = [
        any(j != i and _name_issued(certs[j], certs[i]) and not _self_signed(certs[j]) for j in range(n))
        for i in range(n)
    ]
    candidates = [i for i in range(n) if not issues_other[i] and not _self_signed(certs[i])]
    if not candidates:
        candidates = [i for i in range(n) if not issues_other[i]] or [0]

    def is_ca(i: int) -> bool:
        bc = _ext(certs[i], x509.BasicConstraints)
        return bool(bc and bc.ca)

    leaf = next((i for i in candidates if not is_ca(i)), candidates[0])
    order = [leaf]
    while True:
        cur = certs[order[-1]]
        if _self_signed(cur):
            break
        options = [j for j in range(n) if j not in order and _name_issued(cur, certs[j])]
        if not options:
            options = [j for j in range(n) if j not in order and cur.issuer == certs[j].subject]
        if not options:
            break
        verified = [j for j in options if _issued_by(cur, certs[j])]
        order.append((verified or options)[0])
    rest = [i for i in range(n) if i not in order]
    return order, rest


def _name_matches(pattern: str, name: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    name = name.lower().rstrip(".")
    if pattern == name:
        return True
    if pattern.startswith("*.") and "." in name:
        return name.split(".", 1)[1] == pattern[2:] and pattern.count(".") >= 2
    return False


def _check_name(info: CertInfo, dial_name: str, role: str, findings: list[Finding]) -> None:
    try:
        ip = ipaddress.ip_address(dial_name)
    except ValueError:
        ip = None
    if ip is not None:
        san_match = str(ip) in info.san_ip
    else:
        san_match = any(_name_matches(d, dial_name) for d in info.san_dns)
    cn_match = info.common_name is not None and _name_matches(info.common_name, dial_name)
    has_san = bool(info.san_dns or info.san_ip)
    what = "the name clients dial" if role != "client" else "the client's identity"
    if not san_match and not cn_match:
        findings.append(Finding(
            "name-mismatch", "fail",
            f"neither SAN ({', '.join(info.sans) or 'none'}) nor subject CN ({info.common_name or 'none'}) "
            f"matches {what} {dial_name!r}",
            0,
        ))
    elif cn_match and not san_match:
        msg = (f"{dial_name!r} only matches the subject CN; "
               + ("there is no DNS/IP SAN" if not has_san else f"SAN has {', '.join(info.sans)}")
               + ": add it as SAN dNSName (modern TLS and IKE clients check the SAN)")
        findings.append(Finding("name-cn-only", "warn", msg, 0))
    elif san_match and not cn_match and role == "ikev2-server":
        findings.append(Finding(
            "name-cn-differs", "warn",
            f"SAN matches {dial_name!r} but the subject CN is {info.common_name!r}; "
            "for IKEv2 make subject and SAN both the public FQDN",
            0,
        ))


def inspect_chain(
    certs: Sequence[x509.Certificate],
    dial_name: str | None = None,
    role: Role | str = "ikev2-server",
    *,
    mtu: int = 1500,
    sources: Sequence[str] | None = None,
    now: dt.datetime | None = None,
    udp_port: int = 4500,
) -> ChainReport:
    """Sort ``certs`` leaf first, describe each, and check them against the requirements.

    ``role``: "ikev2-server" (gateway IKEv2 certificate), "sstp-server" (TLS certificate
    of the SSTP listener) or "client" (machine/user certificate sent in IKE_AUTH or
    EAP-TLS). ``dial_name``: the public name clients dial (servers) or the client's
    identity; None skips the name check. ``mtu``: path MTU for the IKE_AUTH fragment
    prediction (IKEv2 roles). ``sources``: the file each certificate came from.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    now = now or dt.datetime.now(dt.timezone.utc)
    findings: list[Finding] = []
    certs = list(certs)
    srcs = list(sources) if sources is not None else [None] * len(certs)
    # drop exact duplicates (a leaf given twice, chain.pem plus fullchain.pem)
    seen: dict[bytes, int] = {}
    uniq: list[x509.Certificate] = []
    uniq_src: list[str | None] = []
    for c, s in zip(certs, srcs):
        der = c.public_bytes(serialization.Encoding.DER)
        if der in seen:
            continue
        seen[der] = len(uniq)
        uniq.append(c)
        uniq_src.append(s)
    if not uniq:
        return ChainReport(role=role, dial_name=dial_name, mtu=mtu, certs=[],
                           findings=[Finding("chain-empty", "fail", "no certificate given")], checked_at=now)
    order, rest = _sort_leaf_first(uniq)
    infos = [describe(uniq[i], k, uniq_src[i]) for k, i in enumerate(order + rest)]
    placed = len(order)

    # --- linkage
    for k in range(placed - 1):
        child, parent = uniq[order[k]], uniq[order[k + 1]]
        if not _issued_by(child, parent):
            findings.append(Finding(
                "chain-broken", "fail",
                f"[{k}] {infos[k].common_name or infos[k].subject} names {infos[k + 1].common_name or infos[k + 1].subject} "
                "as issuer but its signature does not verify with that certificate's key",
                k,
            ))
    for k in range(placed, len(infos)):
        info = infos[k]
        findings.append(Finding(
            "chain-broken", "fail",
            f"[{k}] {info.common_name or info.subject} is not part of the leaf's chain "
            f"(the chain above [{placed - 1}] needs issuer {infos[placed - 1].issuer}"
            + ("" if not infos[placed - 1].self_signed else ", but it ends at a root") + ")",
            k,
        ))
    top = infos[placed - 1]
    if top.self_signed and placed > 1:
        findings.append(Finding("root-included", "info",
                                f"[{placed - 1}] root {top.common_name!r} is included; IKEv2 peers do not send it", placed - 1))
    elif not top.self_signed:
        findings.append(Finding(
            "root-not-included", "info",
            f"[{placed - 1}] {top.common_name or top.subject} is not self-signed; the peer must already hold "
            f"its issuer {top.issuer_common_name or top.issuer} (trust anchor or intermediate store)",
            placed - 1,
        ))

    # --- per certificate
    for info, cert in zip(infos, [uniq[i] for i in order + rest]):
        label = f"[{info.index}] {info.common_name or info.subject}"
        if now < info.not_before:
            findings.append(Finding("not-yet-valid", "fail",
                                    f"{label} is not valid before {info.not_before:%Y-%m-%d %H:%M} UTC", info.index))
        elif now > info.not_after:
            findings.append(Finding("expired", "fail",
                                    f"{label} expired {info.not_after:%Y-%m-%d %H:%M} UTC "
                                    "(Windows: 0x800B0101)", info.index))
        elif info.not_after - now < EXPIRES_SOON:
            findings.append(Finding("expires-soon", "warn",
                                    f"{label} expires {info.not_after:%Y-%m-%d} (within 30 days)", info.index))
        if info.key_type == "RSA" and (info.key_size or 0) < 2048:
            findings.append(Finding("rsa-key-too-small", "fail", f"{label} has an RSA-{info.key_size} key (< 2048)", info.index))
        if "sha1" in info.signature_algorithm.lower() and not info.self_signed:
            findings.append(Finding("sha1-signature", "warn", f"{label} is signed with {info.signature_algorithm}", info.index))

    # --- leaf requirements
    leaf = infos[0]
    leaf_label = f"[0] {leaf.common_name or leaf.subject}"
    if leaf.is_ca and placed > 1:
        findings.append(Finding("leaf-is-ca", "warn", f"{leaf_label} is a CA certificate (basicConstraints CA:TRUE)", 0))
    if leaf.key_usage is not None and "digital_signature" not in leaf.key_usage:
        findings.append(Finding(
            "key-usage-digital-signature-missing", "fail",
            f"{leaf_label} keyUsage ({', '.join(leaf.key_usage) or 'empty'}) lacks digitalSignature, "
            "needed to sign IKE AUTH / TLS handshakes", 0))
    ekus = set(leaf.ekus)
    eku_text = ", ".join(leaf.eku_labels) or "no EKU extension"
    if role in ("ikev2-server", "sstp-server"):
        if "server_auth" not in ekus:
            findings.append(Finding(
                "eku-server-auth-missing", "fail",
                f"{leaf_label} lacks EKU Server Authentication (1.3.6.1.5.5.7.3.1); has: {eku_text}", 0))
        if role == "ikev2-server" and "ipsec_ike_intermediate" not in ekus:
            findings.append(Finding(
                "eku-ike-intermediate-missing", "warn",
                f"{leaf_label} lacks EKU IP security IKE intermediate (1.3.6.1.5.5.8.2.2), recommended "
                f"for IKEv2 gateways; has: {eku_text}", 0))
    else:
        if "client_auth" not in ekus:
            findings.append(Finding(
                "eku-client-auth-missing", "fail",
                f"{leaf_label} lacks EKU Client Authentication (1.3.6.1.5.5.7.3.2); has: {eku_text}", 0))
    if dial_name:
        _check_name(leaf, dial_name, role, findings)
    if role == "sstp-server":
        if leaf.key_type == "RSA":
            findings.append(Finding("sstp-rsa-key", "info",
                                    f"{leaf_label} has an RSA key; ECDSA is recommended for SSTP", 0))
        if not leaf.cdp_urls and not leaf.ocsp_urls:
            findings.append(Finding(
                "sstp-no-revocation-info", "warn",
                f"{leaf_label} has no CRL distribution point or OCSP URL; SSTP clients check revocation "
                "(public CA with reachable CRLs recommended)", 0))

    # --- IKE_AUTH size
    sent = [info.der_size for info in infos[:placed] if not info.self_signed] or [leaf.der_size]
    estimate: IkeAuthEstimate | None = None
    fragments: int | None = None
    needs_frag = False
    if role != "sstp-server":
        try:
            id_len = len(dial_name) if dial_name else len((leaf.san_dns or (leaf.common_name or "x" * 18,))[0])
            estimate = ike_auth_breakdown(
                sent, "pubkey", leaf.key,
                role="responder" if role == "ikev2-server" else "initiator",
                id_len=id_len,
            )
            fragments = ip_fragments_needed(estimate.size, mtu, udp_port)
        except ValueError as exc:
            findings.append(Finding("ike-size-unknown", "info", f"IKE_AUTH size not predicted: {exc}", 0))
        if fragments is not None and fragments > 1:
            needs_frag = True
            why = []
            big = [i for i in infos[:placed] if i.key_type == "RSA" and (i.key_size or 0) > 2048 and not i.self_signed]
            if big:
                why.append(f"RSA keys > 2048 bits ({', '.join(f'[{i.index}] {i.key}' for i in big)})")
            n_int = sum(1 for i in infos[1:placed] if not i.self_signed)
            if n_int >= 1:
                why.append(f"{n_int} intermediate certificate(s) sent")
            findings.append(Finding(
                "ike-fragmentation-needed", "warn",
                f"IKE_AUTH ~{estimate.size} B ({len(sent)} certificate(s), {sum(sent)} B DER) needs "  # type: ignore[union-attr]
                f"{fragments} IP fragments at MTU {mtu}: {FRAGMENTATION_ADVICE}"
                + (f"; size driven by {' and '.join(why)}" if why else ""),
                0,
            ))
    return ChainReport(
        role=role, dial_name=dial_name, mtu=mtu, certs=infos, findings=findings,
        sent_der_sizes=sent, ike_auth=estimate, ip_fragments=fragments,
        needs_ike_fragmentation=needs_frag, checked_at=now,
    )


# ------------------------------------------------------------------------------- output


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


_EKU_SHORT = {
    "server_auth": "serverAuth",
    "client_auth": "clientAuth",
    "ipsec_ike_intermediate": "ikeIntermediate",
    "ipsec_ike": "ipsecIKE",
}


def render_text(report: ChainReport) -> str:
    """A compact, fixed-width table plus findings, for a terminal."""
    lines = []
    head = f"Chain for {report.role}"
    if report.dial_name:
        head += f" {report.dial_name}"
    lines.append(f"{head}: {report.length} certificate(s), {report.total_der_bytes} B DER, leaf first")
    cols = f"{'#':>2}  {'subject CN':<26} {'issuer CN':<26} {'key':<10} {'DER':>5}  {'not after':<10} {'EKU':<26} {'SAN':<28} CDP AIA POL"
    lines.append(cols)
    for c in report.certs:
        eku = ",".join(_EKU_SHORT.get(e, e) for e in c.ekus) or ("-" if not c.is_ca else "(CA)")
        role_mark = "root" if c.self_signed else ""
        lines.append(
            f"{c.index:>2}  {_cut(c.common_name or c.subject, 26):<26} "
            f"{_cut(role_mark or c.issuer_common_name or c.issuer, 26):<26} {c.key:<10} {c.der_size:>5}  "
            f"{c.not_after:%Y-%m-%d} {_cut(eku, 26):<26} {_cut(' '.join(c.sans) or '-', 28):<28} "
            f"{'yes' if c.has_cdp else 'no':<3} {'yes' if c.has_aia else 'no':<3} {'yes' if c.has_policies else 'no'}"
        )
    if report.ike_auth is not None:
        e = report.ike_auth
        frag = (f"{report.ip_fragments} IP fragment(s)" if (report.ip_fragments or 0) > 1 else "1 IP packet (no fragmentation)")
        lines.append(
            f"IKE_AUTH ({e.role}, {e.key}): ~{e.size} B predicted with {len(report.sent_der_sizes)} certificate(s) "
            f"sent ({sum(report.sent_der_sizes)} B DER) -> {frag} at MTU {report.mtu}"
        )
        if report.needs_ike_fragmentation:
            lines.append(f"  {FRAGMENTATION_ADVICE}")
    if report.leaf is not None:
        lines.append(f"Leaf SHA-256: {report.leaf.sha256}")
    if report.findings:
        lines.append("Findings:")
        for f in sorted(report.findings, key=lambda f: SEVERITIES.index(f.severity)):
            lines.append(f"  {f.severity.upper():<4}  {f.code:<34} {f.message}")
    n_fail, n_warn = len(report.failures), len(report.warnings)
    verdict = "FAIL" if n_fail else "PASS"
    lines.append(f"Result: {verdict} ({n_fail} failed, {n_warn} warning(s))")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def to_json(report: ChainReport) -> dict[str, Any]:
    """A JSON-ready dict of the whole report (no key material: certificates are public)."""
    certs = []
    for c in report.certs:
        d = _jsonable(asdict(c))
        d["sans"] = c.sans
        d["eku_labels"] = c.eku_labels
        certs.append(d)
    return {
        "role": report.role,
        "dial_name": report.dial_name,
        "mtu": report.mtu,
        "result": "fail" if report.failed else "pass",
        "length": report.length,
        "total_der_bytes": report.total_der_bytes,
        "sent_der_sizes": list(report.sent_der_sizes),
        "ike_auth": report.ike_auth.to_json() if report.ike_auth else None,
        "ip_fragments": report.ip_fragments,
        "needs_ike_fragmentation": report.needs_ike_fragmentation,
        "fragmentation_advice": FRAGMENTATION_ADVICE if report.needs_ike_fragmentation else None,
        "certificates": certs,
        "findings": [asdict(f) for f in report.findings],
        "checked_at": report.checked_at.isoformat() if report.checked_at else None,
    }


__all__ = [
    "CertInfo",
    "CertificateInputError",
    "ChainReport",
    "EKU_NAMES",
    "Finding",
    "ROLES",
    "describe",
    "inspect_chain",
    "ip_fragments_needed",
    "load_certificates",
    "load_files",
    "predict_ike_auth_size",
    "render_text",
    "to_json",
]
