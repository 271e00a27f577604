"""Live tests of ``aovpn_lab.capture``: real charon traffic, captured on both ends.

Lab of this module's own (nothing else is touched)::

    hxd-c  192.0.2.200/28   hxd-c0 ==veth== hxd-rc  192.0.2.201/28    hxd-r (router,
    charon initiator                                 203.0.113.201/28  nftables)
    hxd-s  203.0.113.200/28 hxd-s0 ==veth== hxd-rs

charon runs in hxd-c and hxd-s (private /run each, kernel-libipsec so IKE floats to UDP
4500, retransmit 2 tries x 1 s so a lost exchange ends after ~3 s, send_cert=always,
send_certreq=no). Both ends are captured with :class:`aovpn_lab.capture.Capture` while
the router applies one condition (fragment drop in prerouting at priority -450, UDP
500/4500 drop in forward, masquerade). Traffic only goes to addresses inside these
namespaces (plus 192.0.2.203 and 203.0.113.202, the tunnel's inner addresses).

Recording: ``AOVPN_RECORD_PCAPS=1 pytest tests/integration/test_diagnose_live.py`` writes
``tests/data/pcap/<scenario>-{client,server}.pcap`` (encrypted payloads and non-first IP
fragments cut, original lengths kept: see ``aovpn_lab.capture.trim``), which the unit
tests diagnose offline.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aovpn_lab.capture import Capture, capture_both, diagnose
from aovpn_lab.capture.trim import trim_capture
from aovpn_lab.ike.craft_netns import netns_path
from aovpn_lab.ike.session import ViciSession

pytestmark = pytest.mark.lab

NS_C, NS_R, NS_S = "hxd-c", "hxd-r", "hxd-s"
IF_C, IF_RC, IF_RS, IF_S = "hxd-c0", "hxd-rc", "hxd-rs", "hxd-s0"
ADDR_C, ADDR_RC, ADDR_RS, ADDR_S = "192.0.2.200", "192.0.2.201", "203.0.113.201", "203.0.113.200"
INNER_C, INNER_S = "192.0.2.203", "203.0.113.202"  # traffic selectors, on lo
NET_C, NET_S = "192.0.2.192/28", "203.0.113.192/28"
GW, CLIENT = "vpn.hxd.example.net", "client.hxd.example.net"
PROPOSALS = ["aes128-sha256-modp2048", "aes128gcm16-prfsha256-ecp256"]
MISMATCH = ["aes256-sha384-ecp384"]
RECORD_DIR = Path(__file__).resolve().parents[1] / "data" / "pcap"
CHARON = "/usr/lib/ipsec/charon"
PLUGINS = ("random nonce openssl pem pkcs1 pkcs8 x509 pubkey constraints kdf hmac sha1 sha2 aes gcm "
           "kernel-libipsec kernel-netlink socket-default vici")


def _cmd(*args: str, input: str | None = None, check: bool = True, timeout: float = 10.0):
    res = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({res.returncode}): "
                           f"{res.stderr.strip() or res.stdout.strip()}")
    return res


def _ns(ns: str, *args: str, **kw):
    return _cmd("ip", "netns", "exec", ns, *args, **kw)


def _exists(ns: str) -> bool:
    return os.path.exists(netns_path(ns))


def _pids(ns: str) -> list[int]:
    res = _cmd("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in res.stdout.split()] if res.returncode == 0 else []


def destroy_netns() -> list[str]:
    """Delete our veths and namespaces (only ours, only when nothing runs in them)."""
    errors = []
    for ns, dev in ((NS_C, IF_C), (NS_S, IF_S)):
        if _exists(ns):
            _cmd("ip", "-n", ns, "link", "del", dev, check=False)
    for ns in (NS_C, NS_R, NS_S):
        if not _exists(ns):
            continue
        if _pids(ns):
            errors.append(f"namespace {ns} still has processes {_pids(ns)}; not deleted")
            continue
        res = _cmd("ip", "netns", "del", ns, check=False)
        if res.returncode:
            errors.append(f"ip netns del {ns}: {res.stderr.strip()}")
    return errors


def create_netns() -> None:
    for ns in (NS_C, NS_R, NS_S):
        _cmd("ip", "netns", "add", ns)
        _cmd("ip", "-n", ns, "link", "set", "lo", "up")
    _cmd("ip", "-n", NS_C, "link", "add", IF_C, "type", "veth", "peer", "name", IF_RC, "netns", NS_R)
    _cmd("ip", "-n", NS_S, "link", "add", IF_S, "type", "veth", "peer", "name", IF_RS, "netns", NS_R)
    for ns, dev, addr in ((NS_C, IF_C, ADDR_C), (NS_R, IF_RC, ADDR_RC), (NS_R, IF_RS, ADDR_RS),
                          (NS_S, IF_S, ADDR_S)):
        _cmd("ip", "-n", ns, "addr", "add", f"{addr}/28", "dev", dev)
        _cmd("ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up")
    _cmd("ip", "-n", NS_C, "addr", "add", f"{INNER_C}/32", "dev", "lo")
    _cmd("ip", "-n", NS_S, "addr", "add", f"{INNER_S}/32", "dev", "lo")
    _cmd("ip", "-n", NS_C, "route", "add", NET_S, "via", ADDR_RC)
    _cmd("ip", "-n", NS_S, "route", "add", NET_C, "via", ADDR_RS)
    _ns(NS_R, "sysctl", "-qw", "net.ipv4.ip_forward=1")


def _strongswan_conf(tmp: Path) -> str:
    return f"""charon {{
  load = {PLUGINS}
  install_virtual_ip = no
  retransmit_tries = 2
  retransmit_timeout = 1.0
  retransmit_base = 1.0
  retransmit_jitter = 0
  filelog {{
    hxd {{
      path = {tmp}/charon.log
      time_format = %H:%M:%S
      flush_line = yes
      default = 1
      ike = 2
      net = 2
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


@dataclass
class Charon:
    ns: str
    tmp: Path
    proc: subprocess.Popen | None = None

    @property
    def vici(self) -> Path:
        return self.tmp / "charon.vici"

    @property
    def log(self) -> str:
        p = self.tmp / "charon.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def start(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        conf = self.tmp / "strongswan.conf"
        conf.write_text(_strongswan_conf(self.tmp))
        out = open(self.tmp / "charon.stdout", "wb")
        try:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private", "sh", "-c",
                 f"mount -t tmpfs none /run && STRONGSWAN_CONF={conf} exec {CHARON}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            out.close()
        deadline = time.monotonic() + 8
        while True:
            assert self.proc.poll() is None, (
                f"charon in {self.ns} exited: {(self.tmp / 'charon.stdout').read_bytes()[-2000:]!r}")
            if self.vici.exists():
                try:
                    with ViciSession(self.vici, timeout=2) as s:
                        s.s.version()
                    break
                except Exception:
                    pass
            assert time.monotonic() < deadline, f"charon in {self.ns}: no vici socket"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # by PID: the child execs into charon
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@dataclass
class Pki:
    root: bytes
    intermediates: list[bytes]
    gw_cert: bytes
    gw_key: bytes
    client_cert: bytes
    client_key: bytes


def _split_pem(data: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    return [part.strip() + b"\n" + marker + b"\n" for part in data.split(marker) if part.strip()]


def load_pki(profile: str, out: Path) -> Pki:
    from aovpn_lab.certs.pki import issue_pki

    files = issue_pki(profile, out, gateways=[GW], machines=[CLIENT])
    gw, cl = files.entity(GW), files.entity(CLIENT)
    return Pki(root=files.ca.read_bytes(), intermediates=_split_pem(files.intermediates.read_bytes()),
               gw_cert=gw.cert.read_bytes(), gw_key=gw.key.read_bytes(),
               client_cert=cl.cert.read_bytes(), client_key=cl.key.read_bytes())


@dataclass
class Scenario:
    name: str
    pki: str = "small"                      # small | large
    fragmentation: bool = False             # RFC 7383 on both ends
    condition: str | None = None            # frag | udp500 | udp4500 | snat
    client_proposals: list[str] = field(default_factory=lambda: list(PROPOSALS))
    client_pki: str | None = None           # PKI the client's certificate comes from (default: pki)
    client_trusts: str | None = None        # PKI whose root the client trusts (default: pki)
    ping: bool = False                      # send traffic through the child SA


SCENARIOS = {s.name: s for s in (
    Scenario("success-small", ping=True),
    Scenario("large-open", pki="large"),
    Scenario("large-fragdrop", pki="large", condition="frag"),
    Scenario("large-fragdrop-rfc7383", pki="large", fragmentation=True, condition="frag"),
    Scenario("large-fragdrop-return", pki="large", condition="frag-return"),
    Scenario("udp4500-blocked", condition="udp4500"),
    Scenario("udp500-blocked", condition="udp500"),
    Scenario("no-proposal", client_proposals=MISMATCH),
    Scenario("auth-failed", client_pki="other"),
    Scenario("server-untrusted", client_trusts="other"),
    Scenario("snat", condition="snat", ping=True),
)}

_NFT = {
    "frag": ("ip", "hxd_frag", "type filter hook prerouting priority -450; policy accept;",
             "ip frag-off & 0x3fff != 0 counter drop"),
    "frag-return": ("ip", "hxd_frag", "type filter hook prerouting priority -450; policy accept;",
                    f'iifname "{IF_RS}" ip frag-off & 0x3fff != 0 counter drop'),
    "udp500": ("inet", "hxd_filter", "type filter hook forward priority 0; policy accept;",
               "udp dport 500 counter drop"),
    "udp4500": ("inet", "hxd_filter", "type filter hook forward priority 0; policy accept;",
                "udp dport 4500 counter drop"),
    "snat": ("ip", "hxd_nat", "type nat hook postrouting priority 100; policy accept;",
             f'oifname "{IF_RS}" counter masquerade'),
}


@dataclass
class Run:
    scenario: Scenario
    client_pcap: Path
    server_pcap: Path
    ok: bool
    seconds: float
    nft_packets: int | None
    ping_ok: bool | None
    error: str


class Lab:
    def __init__(self, tmp: Path, pkis: dict[str, Pki]):
        self.tmp = tmp
        self.pkis = pkis
        self.client = Charon(NS_C, tmp / "charon-c")
        self.server = Charon(NS_S, tmp / "charon-s")

    def load(self, sc: Scenario) -> None:
        pki = self.pkis[sc.pki]
        cpki = self.pkis[sc.client_pki or sc.pki]
        trust = self.pkis[sc.client_trusts or sc.pki]
        frag = "yes" if sc.fragmentation else "no"
        child = {"esp_proposals": ["aes128gcm16"], "start_action": "none"}
        with ViciSession(self.server.vici) as s:
            s.load_cert(pki.root, flag="CA")
            for c in pki.intermediates:
                s.load_cert(c, flag="NONE")
            s.load_key(pki.gw_key)
            s.load_conn("hxd-gw", {
                "version": "2", "local_addrs": [ADDR_S], "proposals": PROPOSALS, "fragmentation": frag,
                "send_cert": "always", "send_certreq": "no",
                "local": {"auth": "pubkey", "certs": [pki.gw_cert], "id": GW},
                "remote": {"auth": "pubkey", "cacerts": [pki.root]},
                "children": {"net": dict(child, local_ts=[f"{INNER_S}/32"], remote_ts=[f"{INNER_C}/32"])},
            })
        with ViciSession(self.client.vici) as s:
            s.load_cert(trust.root, flag="CA")
            for c in cpki.intermediates:
                s.load_cert(c, flag="NONE")
            s.load_key(cpki.client_key)
            s.load_conn("hxd", {
                "version": "2", "local_addrs": [ADDR_C], "remote_addrs": [ADDR_S],
                "proposals": sc.client_proposals, "fragmentation": frag,
                "send_cert": "always", "send_certreq": "no", "keyingtries": "1",
                "local": {"auth": "pubkey", "certs": [cpki.client_cert], "id": CLIENT},
                "remote": {"auth": "pubkey", "id": GW, "cacerts": [trust.root]},
                "children": {"net": dict(child, local_ts=[f"{INNER_C}/32"], remote_ts=[f"{INNER_S}/32"])},
            })

    def reset(self) -> None:
        for charon, name in ((self.client, "hxd"), (self.server, "hxd-gw")):
            with ViciSession(charon.vici) as s:
                for sa in list(s.s.list_sas()):
                    for ike in sa:
                        s.terminate(ike)
        for table in ("ip hxd_frag", "inet hxd_filter", "ip hxd_nat"):
            _ns(NS_R, "nft", "delete", "table", *table.split(), check=False)
        _ns(NS_R, "conntrack", "-F", check=False)

    def run(self, sc: Scenario, out: Path) -> Run:
        self.reset()
        self.load(sc)
        nft = _NFT.get(sc.condition or "")
        if nft:
            fam, table, chain, rule = nft
            _ns(NS_R, "nft", "-f", "-", input=f"table {fam} {table} {{\n chain c {{\n  {chain}\n  {rule}\n }}\n}}\n")
        out.mkdir(parents=True, exist_ok=True)
        ping_ok = None
        try:
            with capture_both(client=(NS_C, IF_C), server=(NS_S, IF_S), directory=out) as pair:
                t0 = time.monotonic()
                with ViciSession(self.client.vici, timeout=20) as s:
                    ok, _logs, error = s.initiate("hxd", "net", 10.0)
                seconds = time.monotonic() - t0
                if sc.ping and ok:
                    ping_ok = _ns(NS_C, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-I", INNER_C,
                                  INNER_S, check=False).returncode == 0
            packets = None
            if nft:
                listing = _ns(NS_R, "nft", "list", "table", nft[0], nft[1]).stdout
                packets = int(listing.split("counter packets ")[1].split()[0])
        finally:
            self.reset()
        return Run(sc, pair.client, pair.server, ok, seconds, packets, ping_ok, error)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request):
    if os.geteuid() != 0:
        pytest.skip("needs root: creates namespaces hxd-c/hxd-r/hxd-s, nftables rules, charon, tcpdump")
    for tool in ("ip", "nft", "tcpdump", "unshare", "conntrack", CHARON):
        assert shutil.which(tool) or os.path.exists(tool), f"{tool} is not installed"
    for ns in (NS_C, NS_R, NS_S):
        assert not (_exists(ns) and _pids(ns)), (
            f"leftover namespace {ns} has processes {_pids(ns)}: not killing what this run did not start")
    assert not destroy_netns()
    cache = Path(request.config.cache.mkdir("hxd-pki"))  # RSA-4096 keys take a while: reuse them
    pkis = {name: load_pki(profile, cache / name)
            for name, profile in (("small", "small"), ("large", "large"), ("other", "small"))}
    tmp = tmp_path_factory.mktemp("hxd")
    the_lab = Lab(tmp, pkis)
    try:
        create_netns()
        the_lab.client.start()
        the_lab.server.start()
        yield the_lab
    finally:
        the_lab.client.stop()
        the_lab.server.stop()
        errors = destroy_netns()
        assert not errors, errors


_runs: dict[str, Run] = {}


def run(lab: Lab, name: str, tmp_path: Path) -> Run:
    r = lab.run(SCENARIOS[name], tmp_path / name)
    _runs[name] = r
    if os.environ.get("AOVPN_RECORD_PCAPS") == "1":
        RECORD_DIR.mkdir(parents=True, exist_ok=True)
        trim_capture(r.client_pcap, RECORD_DIR / f"{name}-client.pcap")
        trim_capture(r.server_pcap, RECORD_DIR / f"{name}-server.pcap")
    return r


def check_recorded(name: str, live) -> None:
    """The recorded (trimmed) pair, if present, gives the same verdict as the live one."""
    c, s = RECORD_DIR / f"{name}-client.pcap", RECORD_DIR / f"{name}-server.pcap"
    if not (c.exists() and s.exists()):
        pytest.fail(f"recorded captures for {name} are missing: run with AOVPN_RECORD_PCAPS=1")
    rec = diagnose(c, s)
    for key in ("established", "cause", "direction", "uses_ip_fragmentation"):
        assert getattr(rec, key) == getattr(live, key), (key, rec.summary(), live.summary())
