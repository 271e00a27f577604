"""The scan itself: sslyze for protocols, suites and the chain; OpenSSL for the trust check.

sslyze is an optional dependency, imported only when a scan runs. From inside a network
namespace the work runs in a thread that joined it (:func:`aovpn_lab.ike.craft_netns.run_in_netns`);
sslyze's worker threads, started from that thread, inherit it.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import ssl
import time
import warnings
from pathlib import Path

from .assessment import assess
from .errors import TlsScanError, check_netns
from .health import health_check
from .report import AcceptedCipher, TlsPosture
from .suites import PROTOCOLS, cipher_weaknesses

__all__ = ["SSLYZE_REQUIREMENT", "scan_tls", "is_name_error"]

SSLYZE_REQUIREMENT = "sslyze>=6.3.1,<7"


def _require_sslyze():
    try:
        import sslyze
    except ImportError:
        raise TlsScanError("sslyze is not installed in this Python",
                           hint=f"pip install '{SSLYZE_REQUIREMENT}'") from None
    import sslyze
    return sslyze


def _resolve(host: str, port: int) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, IndexError) as exc:
        raise TlsScanError(f"cannot resolve {host!r}: {exc}") from None


def scan_tls(host: str, port: int = 443, *, server_name: str | None, ca_file: str | None = None,
             netns: str | None = None, health: bool = False, timeout: float = 5.0) -> TlsPosture:
    """Scan ``host:port`` (an address or a name) sending SNI ``server_name``.

    ``ca_file``: PEM file with the CA(s) clients trust (None: the system store).
    ``netns``: scan from that network namespace. ``health``: also run
    :func:`health_check` and add its finding. ``timeout``: per network operation.
    Never raises for what the server does (an unreachable server is a finding); raises
    :class:`TlsScanError` when the scan cannot run.
    """
    _require_sslyze()
    if ca_file is not None and not Path(ca_file).is_file():
        raise TlsScanError(f"CA file {ca_file} does not exist")
    check_netns(netns)
    began = time.monotonic()
    posture = TlsPosture(host=host, port=port, server_name=server_name, ca_file=ca_file,
                         netns=netns, scanned_at=dt.datetime.now(dt.UTC))
    if netns:
        from ..ike.craft_netns import run_in_netns
        run_in_netns(netns, _scan_into, posture, timeout, netns_timeout=timeout * 12 + 30)
    else:
        _scan_into(posture, timeout)
    if health:
        posture.health = health_check(host, port, server_name=server_name, ca_file=ca_file,
                                      netns=netns, timeout=timeout)
    posture.findings = assess(posture)
    posture.elapsed_ms = int((time.monotonic() - began) * 1000)
    return posture


def _scan_into(posture: TlsPosture, timeout: float) -> None:
    """Runs in the namespace: sslyze, then an OpenSSL trust check of the chain."""
    sslyze = _require_sslyze()
    from sslyze.__version__ import __version__ as sslyze_version
    posture.tool = f"sslyze {sslyze_version}"
    ip = _resolve(posture.host, posture.port)
    sni = posture.server_name or ip
    location = sslyze.ServerNetworkLocation(hostname=sni, port=posture.port, ip_address=ip)
    config = sslyze.ServerNetworkConfiguration(tls_server_name_indication=sni,
                                               network_timeout=max(1, round(timeout)),
                                               network_max_retries=1)
    commands = {getattr(sslyze.ScanCommand, attr.upper()) for attr, _ in PROTOCOLS}
    commands.add(sslyze.ScanCommand.CERTIFICATE_INFO)
    extra = sslyze.ScanCommandsExtraArguments()
    if posture.ca_file:
        extra = sslyze.ScanCommandsExtraArguments(
            certificate_info=sslyze.CertificateInfoExtraArgument(custom_ca_file=Path(posture.ca_file)))
    request = sslyze.ServerScanRequest(server_location=location, network_configuration=config,
                                       scan_commands=commands, scan_commands_extra_arguments=extra)
    scanner = sslyze.Scanner(per_server_concurrent_connections_limit=5, concurrent_server_scans_limit=1)
    with warnings.catch_warnings():
        # sslyze's bundled trust stores hold a few certificates cryptography warns about
        warnings.simplefilter("ignore")
        scanner.queue_scans([request])
        results = list(scanner.get_results())
    result = results[0]
    if result.scan_result is None:
        posture.reachable = False
        trace = result.connectivity_error_trace
        posture.error = _connectivity_error(trace)
        return
    posture.reachable = True
    scan = result.scan_result
    for attr, label in PROTOCOLS:
        attempt = getattr(scan, attr)
        if attempt.result is None:
            posture.protocols[label] = None
            continue
        accepted = attempt.result.accepted_cipher_suites
        posture.protocols[label] = bool(accepted)
        for suite in accepted:
            posture.ciphers.append(_accepted(label, suite))
    _certificate_into(posture, scan.certificate_info, ip, timeout)


def _connectivity_error(trace) -> str:
    if trace is None:
        return "connection failed"
    text = "".join(trace.format_exception_only()).strip()
    match = re.search(r'-> "(.*)"', text)
    kind = getattr(trace, "exc_type_str", None) or getattr(getattr(trace, "exc_type", None), "__name__", "")
    reason = match.group(1) if match else text.splitlines()[-1]
    return f"{kind}: {reason}" if kind else reason


def _accepted(label: str, suite) -> AcceptedCipher:
    cs = suite.cipher_suite
    key = suite.ephemeral_key
    kx, dh_type, dh_bits = "", None, None
    if key is not None:
        dh_type, dh_bits = key.type_name, key.size
        curve = getattr(key, "curve_name", None)
        kx = f"{key.type_name} {curve + ' ' if curve else ''}{key.size}"
    return AcceptedCipher(
        protocol=label, name=cs.name, openssl_name=cs.openssl_name, key_size=cs.key_size,
        anonymous=cs.is_anonymous, key_exchange=kx,
        weaknesses=cipher_weaknesses(cs.name, key_size=cs.key_size, anonymous=cs.is_anonymous,
                                     dh_type=dh_type, dh_bits=dh_bits))


def _certificate_into(posture: TlsPosture, attempt, ip: str, timeout: float) -> None:
    from ..certs.inspect import inspect_chain
    chain: list = []
    if attempt.result is not None:
        deployments = attempt.result.certificate_deployments
        posture.deployments = len(deployments)
        if not deployments:
            return
        first = deployments[0]
        chain = list(first.received_certificate_chain)
        posture.chain_in_order = first.received_chain_has_valid_order
        wanted = "Supplied CA file" if posture.ca_file else None
        results = [r for r in first.path_validation_results
                   if wanted is None or r.trust_store.name == wanted]
        if results and not any(r.was_validation_successful for r in results):
            errors = [r.validation_error for r in results if r.validation_error]
            if errors and not is_name_error(errors[0]):
                posture.strict_error = errors[0]
    posture.trust_anchor = posture.ca_file or "the system store"
    posture.trusted, posture.trust_error, sent = _openssl_trust(ip, posture.port, posture.server_name,
                                                               posture.ca_file, timeout)
    if not chain and sent:
        from cryptography import x509
        chain = [x509.load_der_x509_certificate(sent)]
    if chain:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            posture.chain = inspect_chain(chain, posture.server_name, role="sstp-server")


def is_name_error(message: str) -> bool:
    m = message.lower()
    return "subjectaltname" in m or "hostname" in m or "does not match" in m or "name" in m and "san" in m


def _openssl_trust(ip: str, port: int, server_name: str | None, ca_file: str | None,
                   timeout: float) -> tuple[bool | None, str, bytes | None]:
    """Does the chain verify up to ``ca_file``? OpenSSL, names not checked (inspect does)."""
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    ctx.check_hostname = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1  # judge the chain, whatever the protocol
    ctx.set_ciphers("ALL:!aNULL:!eNULL:@SECLEVEL=0")
    try:
        with socket.create_connection((ip, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            return True, "", tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        return False, exc.verify_message or str(exc), None
    except (OSError, ssl.SSLError) as exc:
        return None, f"trust check could not connect: {exc}", None
