"""TLS posture (sslyze) and the TLS-VPN probe (ocserv + openconnect), live, in namespaces
of their own.

Lab: ``hxt-c`` (client, 203.0.113.230/28) and ``hxt-s`` (server, 203.0.113.231/28),
joined by the veth pair ``hxt-vc``/``hxt-vs``. In ``hxt-s``: small Python TLS servers
(sockets bound there from this process, served by threads: no extra PIDs) with a good
TLS 1.2+ configuration, one accepting TLS 1.0/1.1, one offering NULL/anonymous suites,
one with a certificate for another name — all answering the RRAS health monitor's
``HEAD`` with 401; ocserv through :class:`aovpn_lab.tlsvpn.ocserv.OcservInstance`
(TCP/UDP 4443, pool 198.19.3.0/24); and, for one test, the patched SoftEther SSTP
gateway. Scans, health checks and openconnect run from ``hxt-c``. Nothing leaves these
two namespaces, only PIDs this module started are signalled, and the namespaces are
deleted even when tests fail.
"""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aovpn_lab.ike.craft_netns import netns_path, run_in_netns
from aovpn_lab.tls.posture import health_check, scan_tls
from aovpn_lab.sstp.softether import _is_zombie
from aovpn_lab.tlsvpn.ocserv import OcservInstance, OcservSettings
from aovpn_lab.tlsvpn.probe import probe_openconnect

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces, veth, tun"),
]

NS_C, NS_S = "hxt-c", "hxt-s"
VETH_C, VETH_S = "hxt-vc", "hxt-vs"
ADDR_C, ADDR_S = "203.0.113.230", "203.0.113.231"
NAME = "vpn.example.net"
POOL = ipaddress.ip_network("198.19.3.0/24")
OC_PORT = 4443
PORTS = {"good": 8443, "old-protocols": 8444, "weak-ciphers": 8445, "wrong-san": 8446}
SILENT_PORT, DROP_PORT, CLOSED_PORT = 8447, 8448, 8449
# Fixed, so that a crashed run's ocserv/SoftEther can be found and stopped by recorded PID.
STATE = Path("/tmp/hxt-tls-live")
NFT_TABLE = "hxt_tls"
RRAS_401 = b"HTTP/1.1 401 Unauthorized\r\nServer: Microsoft-HTTPAPI/2.0\r\nContent-Length: 0\r\n\r\n"


# -- namespaces ----------------------------------------------------------------------------

def _cmd(*argv: str, check: bool = True, timeout: float = 15.0, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return res


def _exists(ns: str) -> bool:
    return os.path.exists(netns_path(ns))


def _live_pids(ns: str) -> list[int]:
    res = _cmd("ip", "netns", "pids", ns, check=False)
    pids = [int(p) for p in res.stdout.split()] if res.returncode == 0 else []
    return [p for p in pids if not _is_zombie(p)]


def _stop_recorded() -> list[str]:
    errors = []
    if (STATE / "ocserv" / "instance.json").exists():
        try:
            OcservInstance(STATE / "ocserv").down()
        except Exception as exc:  # noqa: BLE001 - reported, teardown goes on
            errors.append(f"ocserv down: {exc}")
    if (STATE / "softether" / "instance.json").exists():
        from aovpn_lab.sstp import softether
        try:
            softether.SoftEtherInstance(STATE / "softether").down()
        except Exception as exc:  # noqa: BLE001
            errors.append(f"softether down: {exc}")
    return errors


def _destroy() -> list[str]:
    errors = []
    if _exists(NS_S):
        _cmd("ip", "netns", "exec", NS_S, "nft", "delete", "table", "inet", NFT_TABLE, check=False)
    if _exists(NS_C):
        _cmd("ip", "-n", NS_C, "link", "del", VETH_C, check=False)
    for ns in (NS_C, NS_S):
        if not _exists(ns):
            continue
        deadline = time.monotonic() + 10
        while _live_pids(ns) and time.monotonic() < deadline:
            time.sleep(0.05)
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
    _cmd("ip", "-n", NS_C, "link", "add", VETH_C, "type", "veth", "peer", "name", VETH_S, "netns", NS_S)
    _cmd("ip", "-n", NS_C, "addr", "add", f"{ADDR_C}/28", "dev", VETH_C)
    _cmd("ip", "-n", NS_S, "addr", "add", f"{ADDR_S}/28", "dev", VETH_S)
    for ns, dev in ((NS_C, VETH_C), (NS_S, VETH_S)):
        _cmd("ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up")
    # A port whose SYNs vanish, for the "no answer" case.
    _cmd("ip", "netns", "exec", NS_S, "nft",
         f"add table inet {NFT_TABLE}; add chain inet {NFT_TABLE} input "
         f"{{ type filter hook input priority 0; }}; add rule inet {NFT_TABLE} input tcp dport {DROP_PORT} drop")


# -- certificates ----------------------------------------------------------------------------

def _issue(cn: str, issuer=None, issuer_key=None, *, ca: bool = False, san: str | None = None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=90))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             (issuer_key or key).public_key()), critical=False))
    if ca:
        b = b.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        b = (b.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.SubjectAlternativeName([x509.DNSName(san or cn)]), False)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False))
    return b.sign(issuer_key or key, hashes.SHA256()), key


def _write_pair(cert, key, stem: str) -> tuple[Path, Path]:
    pem = serialization.Encoding.PEM
    (STATE / f"{stem}.pem").write_bytes(cert.public_bytes(pem))
    (STATE / f"{stem}.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    os.chmod(STATE / f"{stem}.key", 0o600)
    return STATE / f"{stem}.pem", STATE / f"{stem}.key"


# -- TLS servers in hxt-s (threads of this process) ---------------------------------------------

class TlsServer:
    """Accepts in hxt-s, answers any request with the RRAS 401."""

    def __init__(self, port: int, cert: Path, key: Path, configure) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            configure(self.ctx)
        self.listener = _bind_in_server_ns(port)
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                self.requests.append(data)
                tls.sendall(RRAS_401)
        except (OSError, ssl.SSLError):
            conn.close()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()


def _bind_in_server_ns(port: int) -> socket.socket:
    def bind():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ADDR_S, port))
        sock.listen(16)
        return sock
    return run_in_netns(NS_S, bind)


def _good(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")


def _old_protocols(ctx: ssl.SSLContext) -> None:
    # OpenSSL 3 needs security level 0 for TLS 1.0/1.1 (SHA-1/MD5 in their PRF and signatures)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+AES:@SECLEVEL=0")


def _weak_ciphers(ctx: ssl.SSLContext) -> None:
    # RC4 and 3DES are not in this OpenSSL build at all; NULL and anonymous suites still are
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE+AESGCM:aNULL:eNULL:@SECLEVEL=0")


@dataclass
class TlsLab:
    ca: Path
    other_ca: Path
    cert: Path
    key: Path
    password: str
    servers: dict[str, TlsServer]
    ocserv: OcservInstance
    ocserv_up: dict
    resolv_sha256: str
    timings: dict = field(default_factory=dict)

    def scan(self, port: int, **kw):
        args = {"server_name": NAME, "ca_file": str(self.ca), "netns": NS_C, "timeout": 3.0}
        args.update(kw)
        return scan_tls(ADDR_S, port, **args)

    def connect(self, port: int = OC_PORT, **kw):
        args = {"user": "alice", "password": self.password, "ca_file": str(self.ca), "servername": NAME,
                "ping": self.ocserv_up["ping_target"], "timeout": 8.0, "netns": NS_C}
        args.update(kw)
        return probe_openconnect(ADDR_S, port, **args)


def _resolv_sha256() -> str:
    try:
        return hashlib.sha256(Path("/etc/resolv.conf").read_bytes()).hexdigest()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def tls_lab():
    errors = _stop_recorded()
    errors += _destroy()
    if errors:
        pytest.fail("; ".join(errors) + " (left by another run; stop those processes first)")
    if STATE.exists():
        shutil.rmtree(STATE)
    STATE.mkdir(mode=0o755)
    servers: dict[str, TlsServer] = {}
    silent: socket.socket | None = None
    ocserv = OcservInstance(STATE / "ocserv", NS_S)
    try:
        began = time.monotonic()
        _create()
        root, root_key = _issue("hxt throwaway root", ca=True)
        other, _ = _issue("hxt unrelated root", ca=True)
        leaf, leaf_key = _issue(NAME, root, root_key)
        wrong, wrong_key = _issue("other.example.net", root, root_key)
        pem = serialization.Encoding.PEM
        (STATE / "ca.pem").write_bytes(root.public_bytes(pem))
        (STATE / "other-ca.pem").write_bytes(other.public_bytes(pem))
        cert, key = _write_pair(leaf, leaf_key, "leaf")
        wcert, wkey = _write_pair(wrong, wrong_key, "wrong")
        servers["good"] = TlsServer(PORTS["good"], cert, key, _good)
        servers["old-protocols"] = TlsServer(PORTS["old-protocols"], cert, key, _old_protocols)
        servers["weak-ciphers"] = TlsServer(PORTS["weak-ciphers"], cert, key, _weak_ciphers)
        servers["wrong-san"] = TlsServer(PORTS["wrong-san"], wcert, wkey, _good)
        silent = _bind_in_server_ns(SILENT_PORT)  # accepts TCP (backlog), never speaks TLS
        password = "Lab-" + secrets.token_urlsafe(12)
        resolv = _resolv_sha256()
        up = ocserv.up(OcservSettings(users={"alice": password}, port=OC_PORT), cert, key)
        lab = TlsLab(STATE / "ca.pem", STATE / "other-ca.pem", cert, key, password, servers, ocserv,
                     up, resolv)
        lab.timings["setup_s"] = round(time.monotonic() - began, 3)
        lab.timings["ocserv_start_to_listening_ms"] = up["start_ms"]
        yield lab
    finally:
        for server in servers.values():
            server.close()
        if silent is not None:
            silent.close()
        errors = _stop_recorded()
        errors += _destroy()
        if errors:
            raise RuntimeError("teardown: " + "; ".join(errors))
        shutil.rmtree(STATE, ignore_errors=True)  # throwaway keys; kept only when teardown failed


# -- TLS posture ---------------------------------------------------------------------------------

def test_good_server_has_no_fail_finding(tls_lab, record_property):
    posture = tls_lab.scan(PORTS["good"], health=True)
    record_property("scan_good_ms", posture.elapsed_ms)
    assert posture.reachable, posture.error
    assert not posture.failed, posture.render_text()
    assert posture.accepted_protocols == ["TLS 1.2", "TLS 1.3"]
    assert posture.trusted is True and not posture.strict_error
    codes = posture.codes()
    assert "cert-ecdsa" in codes and "sstp-rsa-key" not in codes
    assert not {c for c in codes if c.startswith("cipher-")}, posture.render_text()
    assert all(c.protocol in ("TLS 1.2", "TLS 1.3") for c in posture.ciphers)
    assert posture.health.status == 401 and "health-401" in posture.codes("info")
    assert posture.elapsed_ms < 5000
    data = json.loads(json.dumps(posture.to_json()))
    assert data["result"] == "pass" and data["certificate"]["chain"]["certificates"][0]["san_dns"] == [NAME]


def test_tls10_and_tls11_are_fail_findings(tls_lab):
    posture = tls_lab.scan(PORTS["old-protocols"])
    assert {"protocol-tls1.0", "protocol-tls1.1"} <= posture.codes("fail"), posture.render_text()
    assert posture.protocols["TLS 1.0"] and posture.protocols["TLS 1.1"]
    # TLS 1.0/1.1 have no AEAD suites: CBC with SHA-1 is all they offer
    assert "cipher-cbc-sha1" in posture.codes("warn")


def test_null_and_anonymous_suites_are_fail_findings(tls_lab):
    posture = tls_lab.scan(PORTS["weak-ciphers"])
    fails = posture.codes("fail")
    assert {"cipher-null", "cipher-anon"} <= fails, posture.render_text()
    assert not {c for c in fails if c.startswith("protocol-")}
    # TLS 1.3 has no NULL/anon suites; the weak ones are all TLS 1.2
    assert {c.protocol for c in posture.ciphers if c.weaknesses} == {"TLS 1.2"}


def test_wrong_san_is_a_fail_finding_while_the_chain_is_trusted(tls_lab):
    posture = tls_lab.scan(PORTS["wrong-san"])
    assert "name-mismatch" in posture.codes("fail"), posture.render_text()
    assert posture.trusted is True and not {"cert-untrusted", "cert-strict-validation"} & posture.codes()
    assert posture.chain.leaf.san_dns == ("other.example.net",)


def test_unknown_ca_is_cert_untrusted(tls_lab):
    posture = tls_lab.scan(PORTS["good"], ca_file=str(tls_lab.other_ca))
    assert posture.codes("fail") == {"cert-untrusted"}, posture.render_text()
    assert "unable to get local issuer certificate" in posture.trust_error


def test_nothing_listening_is_scan_unreachable(tls_lab):
    posture = tls_lab.scan(CLOSED_PORT, health=True)
    assert not posture.reachable
    assert posture.codes("fail") == {"scan-unreachable", "health-no-answer"}
    assert posture.health.cause == "tcp-443-blocked"


def test_health_check_records_the_401(tls_lab):
    result = health_check(ADDR_S, PORTS["good"], server_name=NAME, ca_file=str(tls_lab.ca), netns=NS_C)
    assert (result.answered, result.status, result.status_line) == (True, 401, "HTTP/1.1 401 Unauthorized")
    assert result.headers["server"] == "Microsoft-HTTPAPI/2.0" and result.verified
    sent = tls_lab.servers["good"].requests[-1].decode()
    assert sent.startswith("HEAD /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n")


def test_health_check_that_gets_no_tls_answer_times_out(tls_lab):
    result = health_check(ADDR_S, SILENT_PORT, server_name=NAME, netns=NS_C, timeout=1.0)
    assert (result.answered, result.cause) == (False, "timeout")


def test_command_line_scan_from_the_client_namespace(tls_lab):
    res = _cmd(sys.executable, "-m", "aovpn_lab.tls.posture", "scan", ADDR_S, "--port",
               str(PORTS["old-protocols"]), "--server-name", NAME, "--ca-file", str(tls_lab.ca),
               "--netns", NS_C, "--json", check=False, timeout=60)
    data = json.loads(res.stdout)
    assert res.returncode == 1 and data["result"] == "fail"
    assert "protocol-tls1.0" in {f["code"] for f in data["findings"]}


# -- ocserv + openconnect ---------------------------------------------------------------------------

def test_ocserv_is_up_idempotent_and_listening(tls_lab):
    status = tls_lab.ocserv.status()
    assert status["running"] and status["listening"] and len(status["pids"]) >= 2
    again = tls_lab.ocserv.up(OcservSettings(users={"alice": tls_lab.password}, port=OC_PORT),
                              tls_lab.cert, tls_lab.key)
    assert (again["changed"], again["restarted"]) == (False, False)
    assert again["pids"][0] == tls_lab.ocserv_up["pids"][0]
    udp = _cmd("ip", "netns", "exec", NS_S, "ss", "-lunH").stdout
    assert f":{OC_PORT} " in udp  # DTLS
    conf = (STATE / "ocserv" / "ocserv.conf").read_text()
    assert tls_lab.password not in conf and tls_lab.password not in (STATE / "ocserv" / "ocpasswd").read_text()


def test_openconnect_connects_gets_a_pool_address_and_pings_through_the_tunnel(tls_lab, record_property):
    result = tls_lab.connect()
    record_property("openconnect_tunnel_ms", result.tunnel_ms)
    assert (result.connected, result.cause) == (True, "none"), result.summary() + "\n" + "\n".join(result.log)
    assert ipaddress.ip_address(result.ip) in POOL
    assert result.ping_ok is True, result.summary()
    assert result.routes == [str(POOL)] and result.tls.startswith("(TLS1.")
    assert result.stopped == "SIGTERM" and result.elapsed_ms < 8000
    assert tls_lab.password not in json.dumps(result.to_json())
    # the minimal vpnc-script left DNS alone, and the tun device went with openconnect
    assert _resolv_sha256() == tls_lab.resolv_sha256
    links = _cmd("ip", "-n", NS_C, "-o", "link", "show").stdout
    assert result.interface not in links


def test_openconnect_without_dtls_also_connects(tls_lab):
    result = tls_lab.connect(dtls=False)
    assert result.connected and result.ping_ok and not result.dtls, result.summary()


def test_wrong_password_is_auth_failed(tls_lab):
    result = tls_lab.connect(password="Wrong-" + secrets.token_hex(4))
    assert (result.connected, result.cause) == (False, "auth-failed"), result.summary()


def test_untrusted_ca_is_cert_untrusted(tls_lab):
    result = tls_lab.connect(ca_file=str(tls_lab.other_ca))
    assert (result.connected, result.cause) == (False, "cert-untrusted"), result.summary()
    assert result.cert_reason == "signer not found" and result.server_pin.startswith("pin-sha256:")


def test_wrong_name_is_cert_untrusted(tls_lab):
    result = tls_lab.connect(servername="other.example.net")
    assert (result.cause, result.cert_reason) == ("cert-untrusted", "certificate does not match hostname")


def test_nothing_listening_is_tcp_blocked(tls_lab):
    result = tls_lab.connect(port=CLOSED_PORT)
    assert (result.connected, result.cause, result.detail) == (False, "tcp-443-blocked", "Connection refused")


def test_dropped_syn_is_tcp_blocked_within_the_timeout(tls_lab):
    result = tls_lab.connect(port=DROP_PORT, timeout=1.5)
    assert (result.cause, result.stopped) == ("tcp-443-blocked", "SIGTERM"), result.summary()
    assert result.elapsed_ms < 5000


def test_tcp_up_but_no_tls_is_a_timeout(tls_lab):
    result = tls_lab.connect(port=SILENT_PORT, timeout=1.5)
    assert result.cause == "timeout", result.summary()


def test_ocserv_posture_is_tls12_plus_and_its_health_answer_is_recorded(tls_lab):
    posture = tls_lab.scan(OC_PORT, health=True)
    assert posture.accepted_protocols == ["TLS 1.2", "TLS 1.3"], posture.render_text()
    assert not posture.failed, posture.render_text()
    # ocserv is not RRAS: whatever it answers to the monitor is recorded, and flagged
    assert posture.health.answered and posture.health.status != 401
    assert "health-not-401" in posture.codes("warn")


def test_softether_health_answer_is_recorded(tls_lab, record_property):
    from aovpn_lab.sstp import softether
    if not softether.SYSTEM_BINARY.exists():
        pytest.skip("softether-vpnserver is not installed")
    instance = softether.SoftEtherInstance(STATE / "softether", NS_S)
    try:
        instance.up(softether.SoftEtherSettings(users={"alice": tls_lab.password}), tls_lab.cert, tls_lab.key)
        result = health_check(ADDR_S, 443, server_name=NAME, ca_file=str(tls_lab.ca), netns=NS_C)
    finally:
        instance.down()
    record_property("softether_health", result.status_line)
    assert result.answered, result.summary()
    assert result.status_line == "HTTP/1.1 404 Not Found"  # RRAS answers 401


def test_ocserv_down_stops_only_its_own_processes(tls_lab):
    pids = tls_lab.ocserv.pids()
    result = tls_lab.ocserv.down()
    assert result["stopped"] == pids[:1] and not tls_lab.ocserv.is_running()
    assert not [p for p in pids if os.path.exists(f"/proc/{p}") and not _is_zombie(p)]
    deadline = time.monotonic() + 3  # children of ocserv-main may still be exiting
    while _live_pids(NS_S) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _live_pids(NS_S)
    assert left == [], _cmd("ps", "-o", "pid,ppid,stat,comm,args", "-p", ",".join(map(str, left)),
                            check=False).stdout
