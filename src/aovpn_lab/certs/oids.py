"""Names for the OIDs this package reads and writes (one table, used both ways)."""
from __future__ import annotations

from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

#: Extended key usages by the short names used in profiles/certificates.yml and reports.
EKU_NAMES: dict[str, ObjectIdentifier] = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,  # 1.3.6.1.5.5.7.3.1
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,  # 1.3.6.1.5.5.7.3.2
    "ipsec_ike_intermediate": ObjectIdentifier("1.3.6.1.5.5.8.2.2"),
    "ipsec_ike": ObjectIdentifier("1.3.6.1.5.5.7.3.17"),  # RFC 4945 id-kp-ipsecIKE
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "smartcard_logon": ObjectIdentifier("1.3.6.1.4.1.311.20.2.2"),
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
}

#: Human labels for reports ("Server Authentication" is what Windows shows).
EKU_LABELS: dict[str, str] = {
    "server_auth": "Server Authentication",
    "client_auth": "Client Authentication",
    "ipsec_ike_intermediate": "IP security IKE intermediate",
    "ipsec_ike": "IPsec IKE",
    "code_signing": "Code Signing",
    "email_protection": "Secure Email",
    "ocsp_signing": "OCSP Signing",
    "smartcard_logon": "Smart Card Logon",
    "any": "Any Purpose",
}

_BY_OID = {oid.dotted_string: name for name, oid in EKU_NAMES.items()}

#: Microsoft User Principal Name otherName (SAN).
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


def eku_oid(name_or_dotted: str) -> ObjectIdentifier:
    """``"server_auth"`` or ``"1.3.6.1.5.5.7.3.1"`` -> the OID. Raises KeyError when unknown."""
    if name_or_dotted in EKU_NAMES:
        return EKU_NAMES[name_or_dotted]
    if all(part.isdigit() for part in name_or_dotted.split(".")) and "." in name_or_dotted:
        return ObjectIdentifier(name_or_dotted)
    raise KeyError(name_or_dotted)


def eku_name(oid: ObjectIdentifier) -> str:
    """Short name for a known EKU OID, else the dotted string."""
    return _BY_OID.get(oid.dotted_string, oid.dotted_string)
