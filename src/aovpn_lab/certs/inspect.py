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
from collections.abc import Sequence
from typing import Literal

from cryptography import x509

from aovpn_lab.certs.certinfo import CertInfo, describe
from aovpn_lab.certs.chain import linkage_findings, sort_leaf_first, unique
from aovpn_lab.certs.errors import CertificateInputError
from aovpn_lab.certs.files import load_certificates, load_files
from aovpn_lab.certs.ikeauth import ike_auth_size
from aovpn_lab.certs.oids import EKU_NAMES
from aovpn_lab.certs.report import SEVERITIES, ChainReport, Finding, render_text, to_json
from aovpn_lab.certs.requirements import EXPIRES_SOON, certificate_findings, leaf_findings
from aovpn_lab.certs.sizemodel import ip_fragments_needed, predict_ike_auth_size

Role = Literal["ikev2-server", "sstp-server", "client"]
ROLES: tuple[str, ...] = ("ikev2-server", "sstp-server", "client")


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
    certs = list(certs)
    srcs = list(sources) if sources is not None else [None] * len(certs)
    # drop exact duplicates (a leaf given twice, chain.pem plus fullchain.pem)
    uniq, uniq_src = unique(certs, srcs)
    if not uniq:
        return ChainReport(role=role, dial_name=dial_name, mtu=mtu, certs=[],
                           findings=[Finding("chain-empty", "fail", "no certificate given")], checked_at=now)
    order, rest = sort_leaf_first(uniq)
    infos = [describe(uniq[i], k, uniq_src[i]) for k, i in enumerate(order + rest)]
    placed = len(order)
    findings = linkage_findings([uniq[i] for i in order + rest], infos, placed)
    for info in infos:
        findings += certificate_findings(info, now)
    findings += leaf_findings(infos[0], role, dial_name, placed)
    size = ike_auth_size(infos[:placed], role, dial_name, mtu, udp_port)
    findings += size.findings
    return ChainReport(
        role=role, dial_name=dial_name, mtu=mtu, certs=infos, findings=findings,
        sent_der_sizes=size.sent, ike_auth=size.estimate, ip_fragments=size.fragments,
        needs_ike_fragmentation=size.needs_fragmentation, checked_at=now,
    )


__all__ = [
    "CertInfo",
    "CertificateInputError",
    "ChainReport",
    "EKU_NAMES",
    "EXPIRES_SOON",
    "Finding",
    "ROLES",
    "SEVERITIES",
    "describe",
    "inspect_chain",
    "ip_fragments_needed",
    "load_certificates",
    "load_files",
    "predict_ike_auth_size",
    "render_text",
    "to_json",
]
