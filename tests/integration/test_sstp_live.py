"""The SSTP probe end to end against the patched Debian SoftEther, in namespaces of its own.

Lab: ``hxs-c`` (client, 203.0.113.200) and ``hxs-s`` (server, 203.0.113.201), joined by
the veth pair ``hxs-vc``/``hxs-vs``. SoftEther runs in ``hxs-s`` through
:class:`aovpn_lab.sstp.softether.SoftEtherInstance` (patched copy of the binary, private
mount namespace, ECDSA certificate from a throwaway CA with an intermediate, SecureNAT
198.19.2.0/24). Helper servers for the failure cases (a plain HTTPS server, the
reference SSTP server that verifies the crypto binding, servers that hang up) listen in
``hxs-s`` too; their sockets are bound there from this process. Nothing is sent outside
these two namespaces, and only PIDs this module started are ever signalled.
"""
from __future__ import annotations

import datetime
import hashlib
import http.server
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aovpn_lab.ike.craft_netns import netns_path, run_in_netns
from aovpn_lab.sstp import softether
from aovpn_lab.sstp.probe import probe_sstp
from aovpn_lab.sstp.refserver import ReferenceServerThread, RefServerConfig

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces, veth, mounts"),
]

NS_C, NS_S = "hxs-c", "hxs-s"
VETH_C, VETH_S = "hxs-vc", "hxs-vs"
ADDR_C, ADDR_S = "203.0.113.200", "203.0.113.201"
NAME = "sstp.example.net"
NAT_HOST = "198.19.2.1"
POOL = ipaddress.ip_network("198.19.2.0/24")
# Fixed, so that a crashed run's vpnserver can be found and stopped by its recorded PIDs.
STATE = Path("/tmp/hxs-sstp-live")
NFT_TABLE = "hxs_sstp"


def _cmd(*argv: str, check: bool = True, timeout: float = 15.0, **kwargs) -> subprocess.CompletedProcess:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False,
                         **kwargs)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): "
                           f"{res.stderr.strip() or res.stdout.strip()}")
    return res


def _exists(ns: str) -> bool:
    return os.path.exists(netns_path(ns))


def _live_pids(ns: str) -> list[int]:
    res = _cmd("ip", "netns", "pids", ns, check=False)
    pids = [int(p) for p in res.stdout.split()] if res.returncode == 0 else []
    return [p for p in pids if not softether._is_zombie(p)]


def _stop_recorded_instances() -> None:
    for state in (STATE / "softether", STATE / "unpatched"):
        if (state / softether.STATE_FILE).exists():
            softether.SoftEtherInstance(state).down()


def _destroy() -> list[str]:
    errors = []
    if _exists(NS_C):
        _cmd("ip", "-n", NS_C, "link", "del", VETH_C, check=False)
    for ns in (NS_C, NS_S):
        if not _exists(ns):
            continue
        deadline = time.monotonic() + 10
        while _live_pids(ns) and time.monotonic() < deadline:
            time.sleep(0.1)  # exited processes still being reaped
        if _live_pids(ns):
            errors.append(f"namespace {ns} still has processes {_live_pids(ns)}; not deleted")
            continue
        res = _cmd("ip", "netns", "del", ns, check=False)
        if res.returncode:
            errors.append(f"ip netns del {ns}: {res.stderr.strip()}")
    return errors


def _create() -> None:
    for ns in (NS_C, NS_S):
        _cmd("ip", "netns", "add", ns)
        _cmd("ip", "-n", ns, "link", "set", "lo", "up")
    _cmd("ip", "-n", NS_C, "link", "add", VETH_C, "type", "veth", "peer", "name", VETH_S,
         "netns", NS_S)
    _cmd("ip", "-n", NS_C, "addr", "add", f"{ADDR_C}/24", "dev", VETH_C)
    _cmd("ip", "-n", NS_S, "addr", "add", f"{ADDR_S}/24", "dev", VETH_S)
    for ns, dev in ((NS_C, VETH_C), (NS_S, VETH_S)):
        _cmd("ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up")


def _issue(subject: str, issuer=None, issuer_key=None, *, ca: bool = False, san: str | None = None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    if san:
        builder = (builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False))
    return builder.sign(issuer_key or key, hashes.SHA256()), key


@dataclass
class Lab:
    dir: Path
    ca: Path
    other_ca: Path
    fullchain: Path
    leaf: Path
    key: Path
    leaf_der: bytes
    password: str
    instance: softether.SoftEtherInstance
    up: dict
    timings: dict = field(default_factory=dict)

    def probe(self, port: int = 443, **kwargs):
        args = {"user": "alice@LAB", "password": self.password, "ca_file": str(self.ca), "sni": NAME,
                    "timeout": 10.0, "netns": NS_C}
        args.update(kwargs)
        return probe_sstp(ADDR_S, port, **args)


@pytest.fixture(scope="module")
def lab():
    _stop_recorded_instances()
    leftovers = _destroy()
    if leftovers:
        pytest.fail("; ".join(leftovers) + " (left by another run; stop those processes first)")
    if STATE.exists():
        shutil.rmtree(STATE)
    STATE.mkdir(mode=0o700)
    root, root_key = _issue("hxs throwaway root", ca=True)
    inter, inter_key = _issue("hxs throwaway issuing CA", root.subject, root_key, ca=True)
    leaf, leaf_key = _issue(NAME, inter.subject, inter_key, san=NAME)
    other, _ = _issue("hxs unrelated root", ca=True)
    pem, der = serialization.Encoding.PEM, serialization.Encoding.DER
    files = {"ca.pem": root.public_bytes(pem), "other-ca.pem": other.public_bytes(pem),
             "leaf.pem": leaf.public_bytes(pem),
             "fullchain.pem": leaf.public_bytes(pem) + inter.public_bytes(pem),
             "key.pem": leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())}
    for name, data in files.items():
        (STATE / name).write_bytes(data)
    password = "Lab-" + secrets.token_urlsafe(12)
    instance = softether.SoftEtherInstance(STATE / "softether", NS_S)
    try:
        _create()
        began = time.monotonic()
        up = instance.up(softether.SoftEtherSettings(users={"alice": password}),
                         STATE / "fullchain.pem", STATE / "key.pem")
        lab = Lab(STATE, STATE / "ca.pem", STATE / "other-ca.pem", STATE / "fullchain.pem",
                  STATE / "leaf.pem", STATE / "key.pem", leaf.public_bytes(der), password,
                  instance, up)
        lab.timings["softether_up_s"] = round(time.monotonic() - began, 3)
        lab.timings["softether_start_to_listening_ms"] = up["start_ms"]
        lab.timings["vpncmd_configure_ms"] = up["configure_ms"]
        yield lab
    finally:
        errors = []
        try:
            _stop_recorded_instances()
        except softether.SoftEtherError as exc:
            errors.append(str(exc))
        _cmd("ip", "netns", "exec", NS_S, "nft", "delete", "table", "inet", NFT_TABLE, check=False) \
            if _exists(NS_S) else None
        errors += _destroy()
        if errors:
            raise RuntimeError("teardown: " + "; ".join(errors))


def _listener_in_server_ns(port: int) -> socket.socket:
    def bind():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ADDR_S, port))
        sock.listen(8)
        return sock
    return run_in_netns(NS_S, bind)


@pytest.fixture
def refserver(lab):
    running = []

    def start(port: int, **kwargs):
        config = RefServerConfig(users={"alice": lab.password}, cert_der=lab.leaf_der, **kwargs)
        server = ReferenceServerThread(_listener_in_server_ns(port), str(lab.fullchain),
                                       str(lab.key), config).__enter__()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


# -- the gateway --------------------------------------------------------------------------

def test_gateway_is_up_patched_and_listening_only_where_expected(lab):
    assert lab.up["binary_sha256"] == softether.PATCHED_SHA256
    assert lab.up["original_sha256"] == softether.ORIGINAL_SHA256
    assert lab.up["chain"] == 1 and lab.up["logins"] == ["alice@LAB"]
    status = lab.instance.status()
    assert status["running"] and status["listening"] == {"443": True, "5555": True}
    assert len(status["pids"]) == 2
    udp = _cmd("ip", "netns", "exec", NS_S, "ss", "-lunH").stdout
    # No IPsec/OpenVPN/NAT-T sockets: it can share a namespace with charon (UDP 500/4500).
    assert ":500 " not in udp and ":4500 " not in udp and ":1194 " not in udp
    assert softether._sha256(softether.SYSTEM_BINARY) == softether.ORIGINAL_SHA256


def test_up_again_is_idempotent(lab):
    again = lab.instance.up(softether.SoftEtherSettings(users={"alice": lab.password}),
                            lab.fullchain, lab.key)
    assert (again["changed"], again["restarted"]) == (False, False)
    assert again["pids"] == lab.up["pids"]


# -- the probe against it -----------------------------------------------------------------

def test_connects_with_mschapv2_binding_ip_and_ping(lab):
    result = lab.probe(ping=NAT_HOST)
    assert (result.connected, result.cause) == (True, "none"), result.summary()
    assert result.tls_version in ("TLSv1.2", "TLSv1.3") and result.tls_cipher
    assert result.cert_sha256 == hashlib.sha256(lab.leaf_der).hexdigest()
    assert result.http_status == 200
    assert result.hash_protocol == "SHA256" and result.crypto_binding_sent
    assert result.auth_method == "MS-CHAPv2"
    assert ipaddress.ip_address(result.ip) in POOL and result.peer_ip == NAT_HOST
    assert result.ping_ok is True
    assert result.disconnect.startswith("clean"), result.disconnect
    assert lab.password not in json.dumps(result.to_json()) + result.summary()
    # The server's own log agrees: an SSTP session for alice came up.
    log = "".join(p.read_text(errors="replace") for p in
                  (lab.instance.folder("log") / "security_log" / "LAB").glob("*.log"))
    assert 'Successfully authenticated as user "alice"' in log
    assert "SSTP" in log
    lab.timings["first_connect"] = {p.name: p.ms for p in result.phases}


def test_pap_connects(lab):
    result = lab.probe(auth="pap", ping=NAT_HOST)
    assert (result.connected, result.auth_method, result.ping_ok) == (True, "PAP", True), result.summary()


def test_wrong_password_is_auth_failed(lab):
    result = lab.probe(password="Not-" + lab.password)
    assert (result.connected, result.cause, result.failed_phase) == (False, "auth-failed", "auth")
    assert result.elapsed_ms < 5000


def test_untrusted_ca_is_cert_untrusted(lab):
    result = lab.probe(ca_file=str(lab.other_ca))
    assert (result.cause, result.failed_phase) == ("cert-untrusted", "tls")
    assert "hxs throwaway issuing CA" in result.detail  # who issued what it saw


def test_wrong_name_is_cert_untrusted(lab):
    result = lab.probe(sni="other.example.net")
    assert result.cause == "cert-untrusted" and "hostname mismatch" in result.detail


def test_nothing_listening_is_tcp_blocked(lab):
    result = lab.probe(port=4443, timeout=3.0)
    assert (result.cause, result.failed_phase) == ("tcp-443-blocked", "tcp")
    assert "refused" in result.detail and result.elapsed_ms < 1000


def test_dropped_syn_is_tcp_blocked_within_the_timeout(lab):
    _cmd("ip", "netns", "exec", NS_S, "nft", "-f", "-", input=(
        f"table inet {NFT_TABLE} {{ chain input {{ type filter hook input priority 0; "
        "tcp dport 443 drop; }; }"))
    try:
        began = time.monotonic()
        result = lab.probe(timeout=2.0)
        took = time.monotonic() - began
    finally:
        _cmd("ip", "netns", "exec", NS_S, "nft", "delete", "table", "inet", NFT_TABLE)
    assert (result.cause, result.failed_phase) == ("tcp-443-blocked", "tcp")
    assert "no answer to TCP SYN" in result.detail and 1.9 <= took < 3.0


def test_plain_https_server_is_not_sstp(lab):
    def make():
        httpd = http.server.HTTPServer((ADDR_S, 8443), http.server.SimpleHTTPRequestHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(lab.fullchain, lab.key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        return httpd
    httpd = run_in_netns(NS_S, make)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        result = lab.probe(port=8443)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (result.cause, result.http_status, result.failed_phase) == ("not-sstp", 501, "http")
    assert result.tls_version  # TLS itself was fine


@pytest.mark.parametrize("mode, cause, phase", [
    ("close-in-tls", "tls-failed", "tls"),
    ("close-after-request", "not-sstp", "http"),
    ("close-after-ack", "protocol-error", "lcp"),
])
def test_servers_that_hang_up_mid_handshake(lab, refserver, mode, cause, phase):
    refserver(9443, mode=mode)
    result = lab.probe(port=9443, user="alice", timeout=5.0)
    assert (result.connected, result.cause, result.failed_phase) == (False, cause, phase), \
        result.summary()
    assert result.detail


def test_a_verifying_server_accepts_the_binding_and_rejects_a_foreign_one(lab, refserver):
    good = refserver(10443)
    result = lab.probe(port=10443, user="alice", ping="198.19.3.1")
    assert result.connected and result.ping_ok and good.logs[-1].binding_ok is True
    # TLS offload misconfigured: the server expects another certificate's hash.
    bad = refserver(10444, expected_cert_der=Path(lab.other_ca).read_bytes())
    result = lab.probe(port=10444, user="alice")
    assert (result.cause, result.failed_phase) == ("crypto-binding-rejected", "ipcp")
    assert bad.logs[-1].binding_ok is False


def test_a_compound_mac_that_does_not_verify_is_refused_with_call_abort(lab, refserver):
    server = refserver(10445, forget_inner_keys=True)
    result = lab.probe(port=10445, user="alice")
    assert result.cause == "crypto-binding-rejected" and "CALL_ABORT" in result.detail, result.detail
    log = server.logs[-1]
    assert log.binding_ok is False and any(e.startswith("crypto binding rejected (compound-mac)") for e in log.events)


def test_unpatched_build_never_answers_the_duplex_post(lab):
    instance = softether.SoftEtherInstance(STATE / "unpatched", NS_S, patched=False)
    try:
        up = instance.up(softether.SoftEtherSettings(users={"alice": lab.password}, port=8444,
                                                     admin_port=5556), lab.fullchain, lab.key)
        assert up["binary_sha256"] == softether.ORIGINAL_SHA256
        result = lab.probe(port=8444, timeout=3.0)
    finally:
        instance.down()
    assert (result.cause, result.failed_phase) == ("timeout", "http"), result.summary()
    assert result.tls_version and result.http_status is None


def test_command_line_from_the_client_namespace(lab):
    env = dict(os.environ, HXS_SSTP_PW=lab.password)
    res = _cmd("ip", "netns", "exec", NS_C, sys.executable, "-m", "aovpn_lab.sstp.command",
               "--server", ADDR_S, "--user", "alice@LAB", "--password-env", "HXS_SSTP_PW",
               "--ca", str(lab.ca), "--sni", NAME, "--ping", NAT_HOST, "--json", check=False,
               env=env, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    assert data["connected"] and data["ping_ok"] and data["cause"] == "none"
    assert lab.password not in res.stdout + res.stderr


def test_connect_to_ping_median_of_five(lab, record_property):
    results = [lab.probe(ping=NAT_HOST) for _ in range(5)]
    assert all(r.connected and r.ping_ok for r in results), [r.summary() for r in results]
    to_ping = [r.connect_to_ping_ms for r in results]
    to_ip = [r.connect_to_ip_ms for r in results]
    lab.timings.update(connect_to_ping_ms=to_ping, connect_to_ip_ms=to_ip,
                       ping_ms=[r.ping_ms for r in results], elapsed_ms=[r.elapsed_ms for r in results],
                       median_connect_to_ping_ms=statistics.median(to_ping))
    record_property("sstp_timings", json.dumps(lab.timings))
    (STATE.parent / "hxs-sstp-timings.json").write_text(json.dumps(lab.timings, indent=2))
    assert statistics.median(to_ping) < 3000


def test_down_stops_only_its_own_processes(lab):
    bystander = subprocess.Popen(["ip", "netns", "exec", NS_S, "sleep", "60"])
    try:
        time.sleep(0.2)
        pids = lab.instance.pids()
        assert len(pids) == 2
        result = lab.instance.down()
        assert sorted(result["stopped"]) == sorted(pids)
        assert lab.instance.pids() == [] and not lab.instance.is_running()
        assert bystander.poll() is None  # the other process in the namespace is untouched
        assert lab.instance.down()["stopped"] == []  # twice is fine
    finally:
        os.kill(bystander.pid, signal.SIGTERM)
        bystander.wait(5)
