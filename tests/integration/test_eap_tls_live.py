"""Live: an EAP-TLS user tunnel through a gateway that relays EAP to FreeRADIUS.

The Always On VPN user tunnel in miniature: RRAS -> NPS becomes charon (eap-radius) ->
FreeRADIUS (aovpn_lab.radius), the Windows client becomes a charon doing eap-tls with
the user's certificate. Three network namespaces of this module's own:

    hxr-c  client   192.0.2.241/28   --veth hxr-cg/hxr-gc--  203.0.113.241/28  hxr-g  gateway
    hxr-g  gateway  198.51.100.241/28 --veth hxr-ga/hxr-ag-- 198.51.100.242/28 hxr-a  FreeRADIUS

Nothing is sent outside these namespaces. Every process is started here and stopped by
its PID; the namespaces are deleted at the end even when a test fails.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aovpn_lab.certs.pki import issue_pki
from aovpn_lab.ike import messages as ikemsg
from aovpn_lab.ike import profiles
from aovpn_lab.ike.charon import config_text
from aovpn_lab.ike.craft_netns import run_in_netns
from aovpn_lab.ike.eap import (
    eap_failed,
    eap_tls_connection,
    gateway_connection,
    load_credentials,
)
from aovpn_lab.ike.session import ViciSession
from aovpn_lab.radius import (
    FreeRadius,
    RadiusClient,
    RadiusConfig,
    Secret,
    check,
)
from aovpn_lab.radius import server as radserver

pytestmark = pytest.mark.lab

NS_C, NS_G, NS_A = "hxr-c", "hxr-g", "hxr-a"
NAMESPACES = (NS_C, NS_G, NS_A)
VETHS = ((NS_C, "hxr-cg", NS_G, "hxr-gc"), (NS_G, "hxr-ga", NS_A, "hxr-ag"))
CLIENT, GW_OUT, GW_IN, RAD = "192.0.2.241", "203.0.113.241", "198.51.100.241", "198.51.100.242"
POOL = "198.51.100.224/28"
GW_ID, RAD_ID, USER = "vpn.example.net", "radius.example.net", "alice@example.net"
CONN = "hxr-user"


def _cmd(*argv: str, check: bool = True, timeout: float = 10.0) -> subprocess.CompletedProcess:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip() or res.stdout.strip()}")
    return res


def _ns_exists(ns: str) -> bool:
    return os.path.exists(f"/run/netns/{ns}")


def _ns_pids(ns: str) -> list[int]:
    res = _cmd("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in res.stdout.split()] if res.returncode == 0 else []


def _destroy() -> list[str]:
    problems = []
    for ns, veth, _, _ in VETHS:
        if _ns_exists(ns):
            _cmd("ip", "-n", ns, "link", "del", veth, check=False)
    for ns in NAMESPACES:
        if not _ns_exists(ns):
            continue
        if pids := _ns_pids(ns):
            problems.append(f"{ns} still has processes {pids}; not deleted")
            continue
        res = _cmd("ip", "netns", "del", ns, check=False)
        if res.returncode:
            problems.append(f"ip netns del {ns}: {res.stderr.strip()}")
    return problems


def _create() -> None:
    for ns in NAMESPACES:
        _cmd("ip", "netns", "add", ns)
        _cmd("ip", "-n", ns, "link", "set", "lo", "up")
    for a_ns, a_if, b_ns, b_if in VETHS:
        _cmd("ip", "-n", a_ns, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b_ns)
        for ns, dev in ((a_ns, a_if), (b_ns, b_if)):
            _cmd("ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up")
    # client and gateway sit in different /28s on one link: each routes the other's onlink
    _cmd("ip", "-n", NS_C, "addr", "add", f"{CLIENT}/28", "dev", "hxr-cg")
    _cmd("ip", "-n", NS_C, "route", "add", "203.0.113.240/28", "dev", "hxr-cg")
    _cmd("ip", "-n", NS_G, "addr", "add", f"{GW_OUT}/28", "dev", "hxr-gc")
    _cmd("ip", "-n", NS_G, "route", "add", "192.0.2.240/28", "dev", "hxr-gc")
    _cmd("ip", "-n", NS_G, "addr", "add", f"{GW_IN}/28", "dev", "hxr-ga")
    _cmd("ip", "-n", NS_A, "addr", "add", f"{RAD}/28", "dev", "hxr-ag")


@dataclass
class Charon:
    ns: str
    workdir: Path
    proc: subprocess.Popen | None = None

    @property
    def vici(self) -> Path:
        return self.workdir / "charon.vici"

    @property
    def log(self) -> Path:
        return self.workdir / "charon.log"

    def start(self, extra_conf: str = "") -> None:
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        conf = self.workdir / "strongswan.conf"
        conf.write_text(config_text(self.workdir, profiles.charon_settings()) + extra_conf)
        with open(self.workdir / "charon.stdout", "wb") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private", "sh", "-c",
                 f"mount -t tmpfs none /run && STRONGSWAN_CONF={conf} exec /usr/lib/ipsec/charon"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 8
        while not self.vici.is_socket():
            assert self.proc.poll() is None, f"charon in {self.ns} exited: " \
                f"{(self.workdir / 'charon.stdout').read_text(errors='replace')[-1500:]}"
            assert time.monotonic() < deadline, f"charon in {self.ns}: no vici socket"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # by PID: the child exec'd into charon
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=3)

    def session(self) -> ViciSession:
        return ViciSession(self.vici, timeout=20)

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, offset: int) -> str:
        with open(self.log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


@dataclass
class EapLab:
    tmp: Path
    pki: dict
    secret: Secret
    client: Charon
    gateway: Charon
    radius: FreeRadius
    radius_conf: Path
    results: dict = field(default_factory=dict)

    def radius_config(self, profile: str) -> RadiusConfig:
        p = self.pki[profile]
        rad = p.entity(RAD_ID)
        return RadiusConfig(listen=RAD, ca_files=[p.ca, p.intermediates], cert_file=rad.fullchain,
                            key_file=rad.key, clients=[RadiusClient("hxr-g", GW_IN, self.secret)])

    def use_profile(self, profile: str) -> dict:
        """FreeRADIUS and the gateway's connection with this certificate profile."""
        up = radserver.up(self.radius_config(profile), self.radius.paths.state, NS_A)
        p = self.pki[profile]
        gw = p.entity(GW_ID)
        with self.gateway.session() as s:
            s.s.clear_creds()  # certificates of another profile share identities with these
            load_credentials(s, ca_pem=p.ca.read_bytes(), key_pem=gw.key.read_bytes(),
                             intermediates_pem=p.intermediates.read_bytes())
            s.load_conn("hxr-gw", gateway_connection(GW_OUT, GW_ID, gw.cert.read_bytes(), local_ts=[f"{GW_IN}/32"],
                                                     pools=["hxr-pool"]))
        return up

    def connect(self, profile: str, user_pki: str | None = None) -> dict:
        """One EAP-TLS attempt from the client; returns the evidence and leaves no SA."""
        p, u = self.pki[profile], self.pki[user_pki or profile]
        user = u.entity(USER)
        gw_off, rad_off = self.gateway.log_size(), self.radius.log_size()
        cp = profiles.get("aovpn-recommended")
        with self.client.session() as s:
            s.terminate(CONN)
            s.unload_conn(CONN)
            # the EAP-TLS peer picks its certificate by identity among *all* loaded ones
            s.s.clear_creds()
            load_credentials(s, ca_pem=p.ca.read_bytes(), key_pem=user.key.read_bytes(),
                             intermediates_pem=u.intermediates.read_bytes())
            s.load_conn(CONN, eap_tls_connection(GW_OUT, GW_ID, p.ca.read_bytes(), user.cert.read_bytes(), USER,
                                                 aaa_id=RAD_ID, remote_ts=f"{GW_IN}/32", proposals=cp.ike,
                                                 esp_proposals=cp.esp))
            began = time.monotonic()
            ok, logs, error = s.initiate(CONN, "tunnel", timeout=10)
            elapsed = time.monotonic() - began
            sa = s.list_sa(CONN) if ok else None
            s.terminate(CONN)
            s.unload_conn(CONN)
        lines = [e.get("msg", "") for e in logs]
        msgs = ikemsg.parse(lines)
        child = any(c.get("state") == "INSTALLED" for c in ((sa or {}).get("child-sas") or {}).values())
        return {"ok": ok, "error": error, "elapsed_ms": round(elapsed * 1000), "lines": lines, "msgs": msgs,
                "ike_sa": bool(sa) and sa.get("state") == "ESTABLISHED", "child_sa": child,
                "vip": (sa or {}).get("local-vips"),
                "gateway_log": self.gateway.log_since(gw_off), "radius_log": self.radius.log_text(rad_off)}


@pytest.fixture(scope="module")
def eaplab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces hxr-c/hxr-g/hxr-a, charon, FreeRADIUS")
    for tool in ("/usr/lib/ipsec/charon", radserver.FREERADIUS):
        if not os.path.exists(tool):
            pytest.skip(f"{tool} is not installed")
    assert shutil.which("ip") and shutil.which("unshare")
    for ns in NAMESPACES:
        assert not (_ns_exists(ns) and _ns_pids(ns)), (
            f"leftover namespace {ns} runs {_ns_pids(ns)}: not killing processes this run did not start")
    assert not (problems := _destroy()), problems

    tmp = tmp_path_factory.mktemp("hxr")
    t0 = time.monotonic()
    pki = {name: issue_pki(name, tmp / f"pki-{name}", gateways=[GW_ID, RAD_ID], machines=[], users=[USER])
           for name in ("small", "large")}
    pki["foreign"] = issue_pki("small", tmp / "pki-foreign", gateways=[], machines=[], users=[USER])
    secret = Secret(secrets.token_urlsafe(24))
    client, gateway = Charon(NS_C, tmp / "client"), Charon(NS_G, tmp / "gateway")
    radius = FreeRadius(tmp / "radius", netns=NS_A)
    radius_conf = tmp / "gateway-radius" / "eap-radius.conf"
    lab = EapLab(tmp, pki, secret, client, gateway, radius, radius_conf)
    try:
        _create()
        radserver.write_gateway_conf(radius_conf, {"hxr-a": RAD}, secret)
        gateway.start(f"charon {{\n  plugins {{\n    include {radius_conf}\n  }}\n}}\n")
        client.start()
        with gateway.session() as s:
            s.s.load_pool({"hxr-pool": {"addrs": POOL}})
        print(f"\nsetup (PKIs, namespaces, charons): {time.monotonic() - t0:.2f}s")
        yield lab
    finally:
        for what in (client.stop, gateway.stop, radius.stop):
            try:
                what()
            except Exception as exc:  # noqa: BLE001 - keep tearing down
                print(f"teardown: {exc}")
        problems = _destroy()
        assert not problems, problems


def test_radius_health_from_gateway(eaplab):
    up = radserver.up(eaplab.radius_config("small"), eaplab.radius.paths.state, NS_A)
    assert eaplab.radius.running and up["pid"] == eaplab.radius.pid()
    again = radserver.up(eaplab.radius_config("small"), eaplab.radius.paths.state, NS_A)
    assert again["changed"] is False and again["pid"] == up["pid"]  # idempotent
    status = run_in_netns(NS_G, check, RAD, eaplab.secret, kind="status", source=GW_IN)
    eap = run_in_netns(NS_G, check, RAD, eaplab.secret, kind="eap", source=GW_IN)
    wrong = run_in_netns(NS_G, check, RAD, Secret("not-the-secret"), kind="status", source=GW_IN,
                         timeout=0.3, tries=1)
    print("health", status.answer, status.rtt_ms, "ms;", eap.answer, eap.eap_type, eap.rtt_ms, "ms;", wrong.answer)
    assert status.ok and status.answer == "Access-Accept", status
    assert eap.ok and eap.answer == "Access-Challenge" and eap.eap_type == "EAP-TLS", eap
    assert not wrong.ok and wrong.answer == "no-answer", wrong
    modes = {p.name: p.stat().st_mode & 0o777 for p in eaplab.radius.paths.raddb.iterdir()}
    assert modes["clients.conf"] == 0o600 and modes["radiusd.conf"] == 0o600, modes


@pytest.mark.parametrize("profile", ["small", "large"])
def test_eap_tls_user_tunnel(eaplab, profile):
    eaplab.use_profile(profile)
    r = eaplab.connect(profile)
    assert r["ok"] and r["ike_sa"] and r["child_sa"], (r["error"], r["lines"][-15:], r["gateway_log"][-3000:])
    msgs = r["msgs"]
    auth_requests = [m for m in msgs if m.exchange == "IKE_AUTH" and m.kind == "request" and m.direction == "sent"]
    first = ikemsg.find(msgs, "IKE_AUTH", "response", "received")
    assert first is not None
    assert {"IDr", "CERT", "AUTH", "EAP/REQ/ID"} <= set(first.payloads), first.payloads
    assert "EAP/SUCC" in " ".join(" ".join(m.payloads) for m in msgs)
    req = ikemsg.find(msgs, "IKE_AUTH", "request", "sent")
    eaplab.results[profile] = {"round_trips": 1 + len(auth_requests), "ike_auth_round_trips": len(auth_requests),
                               "responder_first_ike_auth": first.size, "packets": first.packets,
                               "ike_fragments": first.ike_fragments, "initiator_first_ike_auth": req.size,
                               "elapsed_ms": r["elapsed_ms"], "vip": r["vip"]}
    print(f"\n{profile}: {eaplab.results[profile]}")
    assert f"Login OK: [{USER}" in r["radius_log"], r["radius_log"][-2000:]
    assert f"RADIUS authentication of '{USER}' successful" in r["gateway_log"]
    assert len(auth_requests) >= 5  # IDi, EAP identity, TLS flights..., final AUTH
    if profile == "small":
        assert first.size < 1400 and first.packets == 1 and not first.ike_fragments
    else:
        # RSA-4096 root + 2 intermediates + leaf: several kB from the responder, which
        # only arrives as RFC 7383 fragments (or IP fragments without them)
        assert first.size > 4000 and first.ike_fragments >= 4, first
        assert first.size > 4 * eaplab.results["small"]["responder_first_ike_auth"]


def test_user_from_another_ca_is_rejected(eaplab):
    eaplab.use_profile("small")
    r = eaplab.connect("small", user_pki="foreign")
    assert not r["ok"] and not r["child_sa"]
    failure = eap_failed(r["lines"])
    print("\nforeign CA:", r["elapsed_ms"], "ms;", failure)
    assert failure, r["lines"][-20:]
    assert "EAP_FAILURE" in "\n".join(r["lines"]) or "AUTHENTICATION_FAILED" in "\n".join(r["lines"])
    assert f"RADIUS authentication of '{USER}' failed" in r["gateway_log"]
    assert "Login incorrect" in r["radius_log"], r["radius_log"][-2000:]
    # rejected for the right reason: FreeRADIUS cannot chain alice's certificate to the lab CA
    assert "unable to get local issuer certificate" in r["radius_log"] or "unknown CA" in r["radius_log"]


def test_wrong_radius_secret_fails(eaplab):
    eaplab.use_profile("small")
    conf = eaplab.radius_conf
    good = conf.read_text()
    try:
        radserver.write_gateway_conf(conf, {"hxr-a": RAD}, Secret(secrets.token_urlsafe(24)))
        with eaplab.gateway.session() as s:
            s.s.reload_settings()
        r = eaplab.connect("small")
    finally:
        conf.write_text(good)
        with eaplab.gateway.session() as s:
            s.s.reload_settings()
    print("\nwrong secret:", r["elapsed_ms"], "ms;", eap_failed(r["lines"]), "| gateway:",
          [l.split("> ", 1)[-1] for l in r["gateway_log"].splitlines() if "RADIUS" in l][-2:])
    assert not r["ok"] and not r["child_sa"]
    assert eap_failed(r["lines"]), r["lines"][-20:]
    assert "RADIUS Access-Request timed out after" in r["gateway_log"], r["gateway_log"][-3000:]
    assert "Message-Authenticator" in r["radius_log"], r["radius_log"][-2000:]
    # and the right secret works again after the reload
    assert eaplab.connect("small")["child_sa"]


def _cli(*args: str, env: dict | None = None) -> tuple[int, dict]:
    import json
    import sys
    res = subprocess.run([sys.executable, "-m", "aovpn_lab.radius.server", *args], capture_output=True, text=True,
                         timeout=30, env={**os.environ, **(env or {})}, check=False)
    return res.returncode, json.loads(res.stdout)


def test_cli_as_ansible_calls_it(eaplab):
    p, rad = eaplab.pki["small"], eaplab.pki["small"].entity(RAD_ID)
    state = str(eaplab.radius.paths.state)
    secret_file = eaplab.tmp / "cli" / "radius.secret"
    rc, made = _cli("secret", "--out", str(secret_file))
    assert rc == 0 and made["changed"] and secret_file.stat().st_mode & 0o777 == 0o600
    secret_file.write_text(eaplab.secret.reveal() + "\n")  # the lab's secret, as a vault would provide it
    up_args = ["up", "--netns", NS_A, "--state", state, "--listen", RAD, "--ca", str(p.ca), "--ca",
               str(p.intermediates), "--cert", str(rad.fullchain), "--key", str(rad.key), "--client", f"hxr-g={GW_IN}"]
    eaplab.use_profile("small")
    rc, out = _cli(*up_args, "--secret-file", str(secret_file))
    assert rc == 0 and out["changed"] is False, out  # same config as the running instance: kept
    rc, out = _cli(*up_args, env={"AOVPN_RADIUS_SECRET": eaplab.secret.reveal()})
    assert rc == 0 and out["changed"] is False, out
    pid = out["pid"]
    assert eaplab.secret.reveal().encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    rc, out = _cli("check", "--netns", NS_G, "--server", RAD, "--source", GW_IN, "--kind", "eap",
                   "--secret-file", str(secret_file))
    assert rc == 0 and out["ok"] and out["eap_type"] == "EAP-TLS", out
    rc, out = _cli("down", "--state", state)
    assert rc == 0 and out["stopped"] and not eaplab.radius.running
    # started by a process that exits at once, as from Ansible: it keeps running
    rc, out = _cli(*up_args, "--secret-file", str(secret_file))
    assert rc == 0 and out["changed"] is True and eaplab.radius.pid() == out["pid"] != pid, out
    rc, out = _cli("status", "--state", state)
    assert out["running"] and out["config"]["clients"][0]["secret"] == "***"
    os.chmod(secret_file, 0o644)
    rc, out = _cli(*up_args, "--secret-file", str(secret_file))
    assert rc == 1 and out["failed"] and "chmod 600" in out["msg"] and eaplab.secret.reveal() not in out["msg"]
    assert eaplab.connect("small")["child_sa"]


def test_secret_never_logged(eaplab):
    value = eaplab.secret.reveal()
    assert value not in repr(eaplab.radius_config("small")) and value not in str(eaplab.secret)
    for path in [eaplab.radius.paths.log, eaplab.radius.paths.console, eaplab.gateway.log, eaplab.client.log,
                 eaplab.radius.paths.state / "config.json"]:
        if path.exists():
            assert value not in path.read_text(errors="replace"), path
    print("\nsummary", eaplab.results)
