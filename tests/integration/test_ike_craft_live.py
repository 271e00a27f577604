"""Live tests of the stateless IKEv2 probes against a real strongSwan responder.

Lab: two network namespaces of this module's own, ``hxk-a`` (prober,
198.51.100.1) and ``hxk-b`` (charon responder, 198.51.100.2), joined by a veth
pair.  charon runs in ``hxk-b`` in a private mount namespace (own /run) with
kernel-libipsec, config and vici socket in a temporary directory.  Filtering is
done with nftables inside ``hxk-b``.  Nothing is sent outside 198.51.100.0/24.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from aovpn_lab.ike import craft
from aovpn_lab.ike.craft_netns import netns_path, run_in_netns

pytestmark = pytest.mark.lab

NS_A, NS_B = "hxk-a", "hxk-b"
VETH_A, VETH_B = "hxk-va", "hxk-vb"
ADDR_A, ADDR_B = "198.51.100.1", "198.51.100.2"
GW_ID = "gw.hxk.test"
CONFIGURED = ["aes128-sha256-modp2048", "aes128gcm16-prfsha256-ecp256"]

# The explicit plugin list that works for a responder in a namespace on a kernel
# without ESP: kernel-libipsec (userspace ESP, TUN) + kernel-netlink (routes,
# addresses), sockets, vici, crypto and credential plugins.
CHARON_PLUGINS = (
    "random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints "
    "kdf hmac sha1 sha2 aes gcm kernel-libipsec kernel-netlink socket-default vici"
)
PROBE_TIMEOUT = 0.5


def _cmd(*args: str, input: str | None = None, check: bool = True,
         timeout: float = 10.0) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), input=input, capture_output=True, text=True,
                         timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({res.returncode}): "
                           f"{res.stderr.strip() or res.stdout.strip()}")
    return res


def _netns_exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def _netns_pids(name: str) -> list[int]:
    res = _cmd("ip", "netns", "pids", name, check=False)
    return [int(p) for p in res.stdout.split()] if res.returncode == 0 else []


def _destroy_netns() -> list[str]:
    """Delete our veth and our two namespaces; never touches anything else."""
    errors = []
    if _netns_exists(NS_A):
        _cmd("ip", "-n", NS_A, "link", "del", VETH_A, check=False)
    for ns in (NS_A, NS_B):
        if not _netns_exists(ns):
            continue
        pids = _netns_pids(ns)
        if pids:
            errors.append(f"namespace {ns} still has processes {pids}; not deleted")
            continue
        res = _cmd("ip", "netns", "del", ns, check=False)
        if res.returncode != 0:
            errors.append(f"ip netns del {ns}: {res.stderr.strip()}")
    return errors


def _create_netns() -> None:
    _cmd("ip", "netns", "add", NS_A)
    _cmd("ip", "netns", "add", NS_B)
    _cmd("ip", "-n", NS_A, "link", "add", VETH_A, "type", "veth",
         "peer", "name", VETH_B, "netns", NS_B)
    _cmd("ip", "-n", NS_A, "addr", "add", f"{ADDR_A}/24", "dev", VETH_A)
    _cmd("ip", "-n", NS_B, "addr", "add", f"{ADDR_B}/24", "dev", VETH_B)
    for ns, dev in ((NS_A, VETH_A), (NS_B, VETH_B)):
        _cmd("ip", "-n", ns, "link", "set", "lo", "up")
        _cmd("ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up")


def _make_cert():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GW_ID)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(GW_ID)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              x509.ObjectIdentifier("1.3.6.1.5.5.8.2.2")]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    key_der = key.private_bytes(serialization.Encoding.DER,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return cert_der, key_der


def _strongswan_conf(tmp: Path) -> str:
    return f"""charon {{
  load = {CHARON_PLUGINS}
  install_routes = no
  install_virtual_ip = no
  retransmit_tries = 2
  retransmit_timeout = 1.0
  retransmit_base = 1.0
  retransmit_jitter = 0
  filelog {{
    hxk {{
      path = {tmp}/charon.log
      time_format = %H:%M:%S
      flush_line = yes
      default = 1
      ike = 2
      cfg = 2
    }}
  }}
  syslog {{
    daemon {{
      default = -1
    }}
    auth {{
      default = -1
    }}
  }}
  plugins {{
    vici {{
      socket = unix://{tmp}/charon.vici
    }}
  }}
}}
"""


@contextlib.contextmanager
def _vici(path: Path):
    import vici

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(str(path))
        yield vici.Session(sock)
    finally:
        sock.close()


@dataclass
class Lab:
    tmp: Path
    pid: int
    vici_path: Path
    log: Path

    def ikesas(self) -> dict:
        with _vici(self.vici_path) as v:
            stats = v.stats()["ikesas"]
            sas = list(v.list_sas())
        return {"total": int(stats["total"]), "half-open": int(stats["half-open"]),
                "list": sas}

    def settle_ikesas(self, budget: float = 1.0) -> dict:
        """IKE_SA counters once transient (answer-in-flight) SAs are gone.

        A refused IKE_SA_INIT is destroyed right after its answer is sent, so
        allow a short settle time; a real half-open SA stays for 30 s.
        """
        deadline = time.monotonic() + budget
        while True:
            st = self.ikesas()
            if (st["half-open"] == 0 and st["total"] == 0) or time.monotonic() > deadline:
                return st
            time.sleep(0.05)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _stop_charon(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # by PID: the Popen child execs into charon
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=3)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces hxk-a/hxk-b, veth, nftables "
                    "rules and runs charon")
    for tool in ("ip", "nft", "unshare", "/usr/lib/ipsec/charon"):
        assert shutil.which(tool) or os.path.exists(tool), f"{tool} is not installed"
    for ns in (NS_A, NS_B):
        if _netns_exists(ns):
            assert not _netns_pids(ns), (
                f"leftover namespace {ns} has processes {_netns_pids(ns)}: "
                "stop them first (not killing processes this run did not start)")
    leftovers = _destroy_netns()
    assert not leftovers, leftovers

    tmp = tmp_path_factory.mktemp("hxk")
    conf = tmp / "strongswan.conf"
    conf.write_text(_strongswan_conf(tmp))
    vici_path = tmp / "charon.vici"
    proc = None
    out = None
    try:
        _create_netns()
        out = open(tmp / "charon.stdout", "wb")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", NS_B, "unshare", "-m", "--propagation", "private",
             "sh", "-c",
             f"mount -t tmpfs none /run && STRONGSWAN_CONF={conf} exec /usr/lib/ipsec/charon"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 8
        while True:
            assert proc.poll() is None, (
                f"charon exited ({proc.returncode}): "
                f"{(tmp / 'charon.stdout').read_bytes()[-2000:]!r}")
            if vici_path.exists():
                try:
                    with _vici(vici_path) as v:
                        v.version()
                    break
                except OSError:
                    pass
            assert time.monotonic() < deadline, "charon's vici socket did not come up"
            time.sleep(0.05)
        with open(f"/proc/{proc.pid}/comm") as f:
            assert f.read().strip() == "charon", "Popen child did not exec into charon"

        cert_der, key_der = _make_cert()
        with _vici(vici_path) as v:
            v.load_cert({"type": "X509", "flag": "NONE", "data": cert_der})
            v.load_key({"type": "ecdsa", "data": key_der})
            v.load_conn({"hxk-gw": {
                "version": "2",
                "local_addrs": [ADDR_B],
                "proposals": CONFIGURED,
                "local": {"auth": "pubkey", "certs": [cert_der], "id": GW_ID},
                "remote": {"auth": "pubkey"},
                "children": {"net": {"local_ts": ["0.0.0.0/0"],
                                     "esp_proposals": ["aes128gcm16"]}},
            }})
            conns = [name for c in v.list_conns() for name in c]
            plugins = [p.decode() for p in v.stats()["plugins"]]
        assert conns == ["hxk-gw"]
        assert "kernel-libipsec" in plugins
        yield Lab(tmp=tmp, pid=proc.pid, vici_path=vici_path, log=tmp / "charon.log")
    finally:
        _stop_charon(proc)
        if out is not None:
            out.close()
        errors = _destroy_netns()
        assert not errors, errors


@contextlib.contextmanager
def nft_rules(family: str, table: str, chain_spec: str, rule: str):
    """Install one rule in a table of our own in hxk-b; yields a packet-counter reader."""
    ruleset = (f"table {family} {table} {{\n  chain c {{\n    {chain_spec}\n"
               f"    {rule} counter drop\n  }}\n}}\n")
    _cmd("ip", "netns", "exec", NS_B, "nft", "-f", "-", input=ruleset)

    def packets() -> int:
        out = _cmd("ip", "netns", "exec", NS_B, "nft", "list", "table", family, table).stdout
        m = re.search(r"counter packets (\d+)", out)
        return int(m.group(1)) if m else -1

    try:
        yield packets
    finally:
        _cmd("ip", "netns", "exec", NS_B, "nft", "delete", "table", family, table, check=False)


def _reach(**kw) -> dict:
    return run_in_netns(NS_A, craft.reachability, ADDR_B, timeout=PROBE_TIMEOUT, **kw)


def _assert_stateless(lab: Lab) -> None:
    st = lab.settle_ikesas()
    assert st["half-open"] == 0 and st["total"] == 0 and not st["list"], st


INPUT = "type filter hook input priority 0; policy accept;"
PREROUTING_EARLY = "type filter hook prerouting priority -450; policy accept;"
FRAGMENT = "ip frag-off & 0x3fff != 0"


def test_reachability_all_open(lab):
    # count (without dropping) the IP fragments that reach hxk-b
    ruleset = (f"table ip hxk_count {{\n  chain c {{\n    {PREROUTING_EARLY}\n"
               f"    {FRAGMENT} counter\n  }}\n}}\n")
    _cmd("ip", "netns", "exec", NS_B, "nft", "-f", "-", input=ruleset)
    try:
        r = _reach()
        out = _cmd("ip", "netns", "exec", NS_B, "nft", "list", "table", "ip", "hxk_count").stdout
    finally:
        _cmd("ip", "netns", "exec", NS_B, "nft", "delete", "table", "ip", "hxk_count",
             check=False)
    print("all-open", {k: (v["status"], v["rtt_ms"]) for k, v in r["probes"].items()},
          r["elapsed_s"])
    assert r["verdict"] == "none", r
    assert r["findings"] == ["none"]
    probes = r["probes"]
    assert set(probes) == {"udp500", "udp4500", "fragmented500"}
    for name in ("udp500", "udp4500", "fragmented500"):
        assert probes[name]["answered"], (name, probes[name])
        # the broad offer is acceptable, the decoy KE group is not -> INVALID_KE
        assert probes[name]["kind"] == "invalid-ke", probes[name]
        assert probes[name]["requested_group"] == 14  # configured first: modp2048
    assert probes["udp4500"]["port"] == 4500
    assert probes["fragmented500"]["sent_bytes"] == 3000
    assert probes["udp500"]["sent_bytes"] < 1400
    # 3000 B of IKE + UDP + IP = 3028 B -> 3 fragments on a 1500 MTU veth
    assert int(re.search(r"counter packets (\d+)", out).group(1)) == 3
    assert r["elapsed_s"] < 3 * PROBE_TIMEOUT
    _assert_stateless(lab)


def test_exchange_on_4500_uses_non_esp_marker(lab):
    def go():
        msg = craft.build_ike_sa_init("aes128gcm16-prfsha256-ecp256", "modp1024")
        return msg, craft.exchange(ADDR_B, 4500, msg, timeout=PROBE_TIMEOUT)

    msg, ans = run_in_netns(NS_A, go)
    assert ans is not None, "charon did not answer IKE_SA_INIT on UDP 4500"
    assert ans.peer == (ADDR_B, 4500)
    assert ans.initiator_spi == msg[:8]
    assert ans.is_response and ans.exchange == craft.IKE_SA_INIT
    assert ans.kind == "invalid-ke" and ans.requested_group == 19
    # without the marker charon takes the datagram for ESP and stays silent
    silent = run_in_netns(NS_A, craft.exchange, ADDR_B, 4500, msg, timeout=PROBE_TIMEOUT,
                          marker=False)
    assert silent is None
    _assert_stateless(lab)


def test_reachability_udp500_blocked(lab):
    with nft_rules("inet", "hxk_filter", INPUT, "udp dport 500") as dropped:
        r = _reach()
        assert dropped() >= 2  # the small and the padded probe hit the rule
    print("udp500-blocked", {k: (v["status"], v["rtt_ms"]) for k, v in r["probes"].items()},
          r["elapsed_s"])
    assert r["verdict"] == "udp-500-blocked", r
    assert r["findings"] == ["udp-500-blocked"]
    p = r["probes"]
    assert not p["udp500"]["answered"] and p["udp500"]["status"] == "timeout"
    assert p["udp4500"]["answered"]
    # with 500 blocked the fragment test moves to 4500, where fragments pass
    assert p["fragmented4500"]["answered"]
    _assert_stateless(lab)


def test_reachability_udp4500_blocked(lab):
    with nft_rules("inet", "hxk_filter", INPUT, "udp dport 4500") as dropped:
        r = _reach()
        assert dropped() == 1
    print("udp4500-blocked", {k: (v["status"], v["rtt_ms"]) for k, v in r["probes"].items()},
          r["elapsed_s"])
    assert r["verdict"] == "udp-4500-blocked", r
    assert r["findings"] == ["udp-4500-blocked"]
    assert r["probes"]["udp500"]["answered"] and r["probes"]["fragmented500"]["answered"]
    assert not r["probes"]["udp4500"]["answered"]
    _assert_stateless(lab)


def test_reachability_fragments_dropped(lab):
    with nft_rules("ip", "hxk_frag", PREROUTING_EARLY, FRAGMENT) as dropped:
        r = _reach()
        assert dropped() == 3  # all three fragments of the padded probe
    print("fragments-dropped", {k: (v["status"], v["rtt_ms"]) for k, v in r["probes"].items()},
          r["elapsed_s"])
    assert r["verdict"] == "ip-fragments-dropped", r
    assert r["probes"]["udp500"]["answered"] and r["probes"]["udp4500"]["answered"]
    assert not r["probes"]["fragmented500"]["answered"]
    _assert_stateless(lab)


def test_reachability_nothing_answers(lab):
    with nft_rules("inet", "hxk_filter", INPUT, "udp dport { 500, 4500 }"):
        r = _reach()
    assert r["verdict"] == "no-response", r
    assert not any(p["answered"] for p in r["probes"].values())
    _assert_stateless(lab)


def test_accepted_proposals(lab):
    candidates = ["3des-sha1-modp1024", "aes128-sha256-modp2048",
                  "AES256-SHA256-Group14", "GCMAES128-SHA256-ECP256",
                  "aes256gcm16-prfsha384-ecp384"]
    t0 = time.monotonic()
    res = run_in_netns(NS_A, craft.accepted_proposals, ADDR_B, candidates,
                       timeout=PROBE_TIMEOUT, delay=0.02)
    elapsed = time.monotonic() - t0
    print("accepted_proposals", [(r["proposal"], r["accepted"], r["rtt_ms"]) for r in res],
          round(elapsed, 3))
    by = {r["proposal"]: r for r in res}
    assert list(by) == ["3des-sha1-modp1024", "aes128-sha256-modp2048",
                        "aes256-sha256-modp2048", "aes128gcm16-prfsha256-ecp256",
                        "aes256gcm16-prfsha384-ecp384"]
    assert by["aes128-sha256-modp2048"]["accepted"] is True
    assert by["aes128-sha256-modp2048"]["requested_group"] == 14
    assert by["aes128gcm16-prfsha256-ecp256"]["accepted"] is True
    assert by["aes128gcm16-prfsha256-ecp256"]["requested_group"] == 19
    assert by["aes128gcm16-prfsha256-ecp256"]["windows"] == "GCMAES128-SHA256-ECP256"
    for refused in ("3des-sha1-modp1024", "aes256-sha256-modp2048",
                    "aes256gcm16-prfsha384-ecp384"):
        assert by[refused]["accepted"] is False, by[refused]
        assert by[refused]["kind"] == "no-proposal-chosen"
    assert not any(r["state_created"] for r in res)
    assert elapsed < 2.0
    _assert_stateless(lab)


def test_preferred_group_follows_gateway_order(lab):
    # offered GCM/ECP256 first, but charon prefers its configured order
    pref = run_in_netns(NS_A, craft.preferred_group, ADDR_B,
                        ["aes128gcm16-prfsha256-ecp256", "aes128-sha256-modp2048"],
                        timeout=PROBE_TIMEOUT)
    assert pref["group"] == 14 and pref["group_name"] == "modp2048", pref
    assert pref["matching"] == ["aes128-sha256-modp2048"]
    only_gcm = run_in_netns(NS_A, craft.preferred_group, ADDR_B,
                            ["aes128gcm16-prfsha256-ecp256", "3des-sha1-modp1024"],
                            timeout=PROBE_TIMEOUT)
    assert only_gcm["group"] == 19
    _assert_stateless(lab)


def test_no_half_open_sas_after_all_probes(lab):
    st = lab.settle_ikesas()
    assert st == {"total": 0, "half-open": 0, "list": []}
    log = lab.log_text()
    assert "N(INVAL_KE)" in log and "N(NO_PROP)" in log  # charon saw and refused probes


def test_positive_control_matching_ke_creates_half_open_sa(lab):
    """A KE in the group the responder selects *is* accepted and leaves state:
    the check above would catch it.  Runs last (charon is discarded afterwards)."""
    def go():
        msg = craft.build_ike_sa_init("aes128gcm16-prfsha256-ecp256", "ecp256",
                                      src=(ADDR_A, 500), dst=(ADDR_B, 500))
        return craft.exchange(ADDR_B, 500, msg, timeout=PROBE_TIMEOUT)

    ans = run_in_netns(NS_A, go)
    assert ans is not None and ans.kind == "sa-init-accepted", ans
    assert ans.chosen_proposal_text == "aes128gcm16-prfsha256-ecp256"
    assert ans.ke_group == 19
    assert ans.fragmentation_supported  # charon advertises RFC 7383 support
    st = lab.ikesas()
    assert st["half-open"] == 1, st
