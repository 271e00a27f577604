"""Certificates read from files: PEM (one or several blocks), DER, or PKCS#7 (.p7b)."""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from aovpn_lab.certs.errors import CertificateInputError

__all__ = ["load_certificates", "load_files"]

_EXPECTED = "expected an X.509 certificate: PEM (-----BEGIN CERTIFICATE-----), DER, or PKCS#7 (.p7b)"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----\s*(.*?)-----END \1-----", re.S)


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

