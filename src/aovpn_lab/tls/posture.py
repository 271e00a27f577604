"""TLS posture of an SSTP listener (or any TLS VPN front end), and the RRAS health monitor.

:func:`scan_tls` asks sslyze which protocol versions and cipher suites the server
accepts, checks the certificate the server sends (trusted by ``ca_file``; EKU, names and
key via :func:`aovpn_lab.certs.inspect.inspect_chain`, role ``sstp-server``) and turns
all of it into findings with stable codes. :func:`health_check` sends what load
balancers send to an RRAS SSTP server (docs/domain.md, "Load balancing")::

    HEAD /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1

and records the status line; RRAS answers ``HTTP/1.1 401``. Both can run from inside a
network namespace (``netns=``): the work runs in a thread that joined the namespace
with setns(2) (:func:`aovpn_lab.ike.craft_netns.run_in_netns`), and sslyze's own worker
threads, started from that thread, inherit it.

    >>> posture = scan_tls("203.0.113.231", 443, server_name="vpn.example.net",
    ...                    ca_file="ca.pem", netns="hxt-c", health=True)  # doctest: +SKIP
    >>> posture.failed, sorted(posture.codes("fail"))                    # doctest: +SKIP
    (True, ['protocol-tls1.0'])
    >>> print(posture.render_text())                                     # doctest: +SKIP

Findings (``fail`` = requirement not met, ``warn`` = risky or not recommended, ``info``):

- scan: ``scan-unreachable`` (fail: no TLS handshake at all), ``scan-incomplete`` (warn:
  a sslyze command failed, its protocol is unknown)
- protocols (requirement: TLS 1.2 and newer only): ``protocol-ssl2``, ``protocol-ssl3``,
  ``protocol-tls1.0``, ``protocol-tls1.1`` (fail: accepted); ``protocol-tls1.2-missing``
  (warn: clients without TLS 1.3 cannot connect); ``protocol-tls1.3-missing`` (info)
- cipher suites (one finding per code, naming every suite and protocol):
  ``cipher-null``, ``cipher-export``, ``cipher-anon``, ``cipher-rc4``, ``cipher-3des``,
  ``cipher-des``, ``cipher-legacy`` (RC2, IDEA), ``cipher-md5``, ``cipher-weak-key``
  (< 128 bits) — all fail; ``cipher-cbc-sha1``, ``cipher-no-forward-secrecy`` (static
  RSA/DH/PSK key exchange), ``cipher-weak-dh`` (DHE < 2048 bits, ECDHE < 224 bits),
  ``cipher-no-aead`` (TLS 1.2 without any GCM/CCM/ChaCha20 suite) — warn
- certificate: ``cert-untrusted`` (fail: the chain the server sends does not verify up
  to ``ca_file``, or to the system store without one; names are not part of this check),
  ``cert-none`` (fail: no certificate), ``cert-trust-unknown`` (warn: the OpenSSL
  check could not connect), ``cert-chain-order`` (warn),
  ``cert-strict-validation`` (warn: trusted by OpenSSL but RFC 5280 strict path
  validation, as in sslyze/cryptography, rejects it for a reason other than the name),
  ``cert-ecdsa`` (info: ECDSA, recommended), ``cert-deployments`` (info: the server
  picks between several certificates); plus the codes of
  :func:`~aovpn_lab.certs.inspect.inspect_chain` as they are: ``name-mismatch`` (fail),
  ``eku-server-auth-missing`` (fail), ``expired`` (fail), ``sstp-rsa-key`` (info:
  ECDSA recommended), ``sstp-no-revocation-info`` (warn), ...
- health (with ``health=True``): ``health-401`` (info: answers like RRAS),
  ``health-not-401`` (warn: a monitor built for RRAS marks this server down),
  ``health-no-answer`` (fail)

The parts, one noun each: :mod:`.scan` (sslyze and the trust check), :mod:`.suites`
(protocol versions, cipher suites and their weaknesses), :mod:`.assessment` (findings),
:mod:`.report` (:class:`TlsPosture` as text and JSON), :mod:`.health` (the RRAS health
monitor), :mod:`.errors` (why a scan cannot run). This module names them all and is the
command line.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import AovpnError
from .assessment import assess, health_findings
from .errors import TlsScanError
from .health import HEALTH_PATH, RRAS_HEALTHY_STATUS, HealthCheck, health_check, parse_status
from .report import FINDING_AREAS, SEVERITIES, UNOBSERVED, AcceptedCipher, Finding, TlsPosture
from .scan import SSLYZE_REQUIREMENT, is_name_error, scan_tls
from .suites import (
    CIPHER_CODES,
    FORBIDDEN_PROTOCOLS,
    PROTOCOL_LABELS,
    PROTOCOLS,
    cipher_weaknesses,
    is_aead,
)

__all__ = [
    "HEALTH_PATH", "RRAS_HEALTHY_STATUS", "SSLYZE_REQUIREMENT", "SEVERITIES", "UNOBSERVED",
    "PROTOCOLS", "PROTOCOL_LABELS", "FORBIDDEN_PROTOCOLS", "CIPHER_CODES", "FINDING_AREAS",
    "TlsScanError", "Finding", "AcceptedCipher", "HealthCheck", "TlsPosture",
    "cipher_weaknesses", "is_aead", "assess", "health_findings", "is_name_error",
    "scan_tls", "health_check", "parse_status", "build_parser", "main",
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aovpn_lab.tls.posture",
                                description="TLS posture of an SSTP listener (sslyze) and the "
                                            "RRAS load-balancer health monitor.")
    sub = p.add_subparsers(dest="action", required=True)
    for name, help_ in (("scan", "protocols, cipher suites, certificate (+ --health)"),
                        ("health", f"only HEAD {HEALTH_PATH}")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("host")
        s.add_argument("--port", type=int, default=443)
        s.add_argument("--server-name", help="SNI and the name the certificate must carry")
        s.add_argument("--ca-file", help="PEM CA(s) clients trust (default: system store)")
        s.add_argument("--netns", help="run from this network namespace")
        s.add_argument("--timeout", type=float, default=5.0)
        s.add_argument("--json", action="store_true", help="one JSON object on stdout")
        if name == "scan":
            s.add_argument("--health", action="store_true", help=f"also HEAD {HEALTH_PATH}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit 0: no fail finding (health: answered 401); 1: fail finding; 2: could not run."""
    args = build_parser().parse_args(argv)
    try:
        if args.action == "scan":
            posture = scan_tls(args.host, args.port, server_name=args.server_name,
                               ca_file=args.ca_file, netns=args.netns, health=args.health,
                               timeout=args.timeout)
            print(json.dumps(posture.to_json(), indent=2) if args.json else posture.render_text())
            return 1 if posture.failed else 0
        result = health_check(args.host, args.port, server_name=args.server_name,
                              ca_file=args.ca_file, netns=args.netns, timeout=args.timeout)
        print(json.dumps(result.to_json(), indent=2) if args.json else result.summary())
        return 0 if result.rras_like else 1
    except AovpnError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"failed": True, "msg": str(exc)}))
        print(f"tls-posture: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
