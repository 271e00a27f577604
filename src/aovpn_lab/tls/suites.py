"""TLS protocol versions and cipher suites, and what makes an accepted one weak.

The requirement: TLS 1.2 and newer only, no suite with a fail-level weakness;
warn-level weaknesses are named for suites that have no worse one.
"""
from __future__ import annotations

import re

__all__ = ["PROTOCOLS", "PROTOCOL_LABELS", "FORBIDDEN_PROTOCOLS", "CIPHER_CODES",
           "cipher_weaknesses", "is_aead"]

#: sslyze scan-command attribute -> protocol label, oldest first
PROTOCOLS: tuple[tuple[str, str], ...] = (
    ("ssl_2_0_cipher_suites", "SSL 2.0"),
    ("ssl_3_0_cipher_suites", "SSL 3.0"),
    ("tls_1_0_cipher_suites", "TLS 1.0"),
    ("tls_1_1_cipher_suites", "TLS 1.1"),
    ("tls_1_2_cipher_suites", "TLS 1.2"),
    ("tls_1_3_cipher_suites", "TLS 1.3"),
)
PROTOCOL_LABELS = tuple(label for _, label in PROTOCOLS)
#: accepted -> fail (the requirement is TLS 1.2 and newer only)
FORBIDDEN_PROTOCOLS = {"SSL 2.0": "protocol-ssl2", "SSL 3.0": "protocol-ssl3",
                       "TLS 1.0": "protocol-tls1.0", "TLS 1.1": "protocol-tls1.1"}

#: cipher weakness code -> (severity, what it means)
CIPHER_CODES: dict[str, tuple[str, str]] = {
    "cipher-null": ("fail", "NULL encryption (traffic in clear text)"),
    "cipher-export": ("fail", "EXPORT-grade suites (40/56-bit keys)"),
    "cipher-anon": ("fail", "anonymous key exchange (no server authentication: trivially intercepted)"),
    "cipher-rc4": ("fail", "RC4 (RFC 7465 prohibits it)"),
    "cipher-3des": ("fail", "3DES (64-bit block, Sweet32)"),
    "cipher-des": ("fail", "single DES"),
    "cipher-legacy": ("fail", "RC2/IDEA (removed from TLS 1.2)"),
    "cipher-md5": ("fail", "MD5 MAC"),
    "cipher-weak-key": ("fail", "symmetric key below 128 bits"),
    "cipher-cbc-sha1": ("warn", "CBC mode with a SHA-1 MAC (Lucky13-class padding oracles; prefer AEAD)"),
    "cipher-no-forward-secrecy": ("warn", "static RSA/DH/PSK key exchange (no forward secrecy)"),
    "cipher-weak-dh": ("warn", "ephemeral (EC)DH group too small (DH < 2048, ECDH < 224 bits)"),
}


def cipher_weaknesses(name: str, *, key_size: int | None = None, anonymous: bool = False,
                      dh_type: str | None = None, dh_bits: int | None = None) -> list[str]:
    """Weakness codes of one accepted suite (IANA name as sslyze reports it).

    Warn-level codes are only given to suites without a fail-level weakness, so that a
    bad suite is listed once, where it matters.

    >>> cipher_weaknesses("TLS_RSA_WITH_3DES_EDE_CBC_SHA", key_size=168)
    ['cipher-3des']
    >>> cipher_weaknesses("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", key_size=128)
    ['cipher-cbc-sha1']
    >>> cipher_weaknesses("TLS_RSA_WITH_AES_256_GCM_SHA384", key_size=256)
    ['cipher-no-forward-secrecy']
    >>> cipher_weaknesses("TLS_AES_128_GCM_SHA256", key_size=128)
    []
    """
    n = name.upper()
    codes: list[str] = []
    null = "WITH_NULL" in n or "_NULL_" in n or n.endswith("_NULL")
    if null:
        codes.append("cipher-null")
    if "EXPORT" in n:
        codes.append("cipher-export")
    if anonymous or "_ANON_" in n:
        codes.append("cipher-anon")
    if "RC4" in n:
        codes.append("cipher-rc4")
    triple = "3DES" in n or "DES_192_EDE3" in n or "DES_CBC3" in n or "DES_EDE" in n
    if triple:
        codes.append("cipher-3des")
    elif re.search(r"(^|_)DES(40)?_|DES_64|_DES$", n):
        codes.append("cipher-des")
    if "RC2" in n or "IDEA" in n:
        codes.append("cipher-legacy")
    if n.endswith("_MD5"):
        codes.append("cipher-md5")
    if (key_size is not None and 0 < key_size < 128 and not null
            and "cipher-export" not in codes and "cipher-des" not in codes):
        codes.append("cipher-weak-key")
    if codes:
        return codes
    if "_CBC_" in n and n.endswith("_SHA"):
        codes.append("cipher-cbc-sha1")
    static = (n.startswith(("TLS_RSA_WITH_", "TLS_PSK_WITH_", "TLS_RSA_PSK_WITH_"))
              or re.match(r"TLS_(DH|ECDH)_(RSA|DSS|ECDSA)_", n) is not None)
    if static:
        codes.append("cipher-no-forward-secrecy")
    if dh_bits and ((dh_type == "DH" and dh_bits < 2048) or (dh_type == "ECDH" and dh_bits < 224)):
        codes.append("cipher-weak-dh")
    return codes


def is_aead(name: str) -> bool:
    n = name.upper()
    return any(m in n for m in ("_GCM", "CHACHA20", "_CCM"))
