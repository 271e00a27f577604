"""The load-balancing cells that change the system while clients use it: a gateway dies
under a health monitor, a gateway fails with clients connected, SAs rekey through the
balancer. Each returns the cell's verdict with the measured figures as evidence.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..service import Daemon
from ..verdict import Expectation, Verdict
from .crowd import Crowd, Timers
from .lab import LabBalancer
from .measure import settings

HEALTH = "AOVPN-LB-HEALTH-001"
FAILOVER = "AOVPN-LB-FAILOVER-001"
REKEY = "AOVPN-LB-REKEY-001"
VICTIM = "gw2"  # the gateway these cells fail: gw1 also serves the rest of the matrix


def monitor_settings(lab: LabBalancer) -> dict[str, Any]:
    """load_balancer.health_monitor with the monitor's own defaults filled in."""
    return {"interval": 1.0, "timeout": 0.5, "fall": 2, "rise": 2, **lab.config.health_monitor}


@contextlib.contextmanager
def monitor_running(lab: LabBalancer, check: str) -> Iterator[Daemon]:
    """The lab balancer's health monitor (profiles/daemons.yml, lbmonitor) with `check`,
    in the balancer's namespace, for the duration of the block."""
    hm = monitor_settings(lab)
    d = Daemon("lbmonitor", _monitor_dir(lab), lab.netns,
               values={"python": sys.executable, "check": check, "interval": hm["interval"],
                       "timeout": hm["timeout"], "fall": hm["fall"], "rise": hm["rise"], "balancer": str(lab.state)})
    d.state_dir.mkdir(parents=True, exist_ok=True)
    d.start()
    try:
        yield d
    finally:
        d.stop()


@contextlib.contextmanager
def monitored_crowd(lab: LabBalancer, check: str, crowd: Crowd) -> Iterator[Crowd]:
    """The health monitor (`check`) and the crowd's charon for the block, started at the
    same time: each start mostly waits on its own process (the monitor's imports, charon's
    plugins and vici socket), about half a second each on two cores."""
    monitor = monitor_running(lab, check)
    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(max_workers=1) as pool:
            starting = pool.submit(monitor.__enter__)
            try:
                stack.enter_context(crowd)
            finally:
                starting.result()           # the monitor's own start error, if any, is the one raised
                stack.push(monitor.__exit__)  # so stopped first: the crowd does not need it to end
        yield crowd


def _monitor_dir(lab: LabBalancer) -> Path:
    return lab.state / "monitor"


def monitor_round(lab: LabBalancer) -> int:
    """How many rounds the running monitor has finished (its live.json; 0 before the first)."""
    from .monitor import StateFile
    return int(StateFile(_monitor_dir(lab)).read().get("round", 0))


def live(lab: LabBalancer) -> list[str]:
    return list(lab.current()["live"])


def detection_budget(lab: LabBalancer) -> float:
    """How long the monitor may take to notice a change: fall (or rise) checks, each up to
    its interval plus its timeout, and one interval of slack."""
    hm = monitor_settings(lab)
    return (max(hm["fall"], hm["rise"]) + 1) * (hm["interval"] + hm["timeout"]) + 1.0


def _expect(requirement: str, outcome: str, reason: str, fix: str = "") -> Expectation:
    return Expectation(outcome, requirement, reason, fix)


# -- health monitor --------------------------------------------------------------------

def health_monitor_cell(lab: LabBalancer, check: str, failure: str, clients: int = 20) -> Verdict:
    data = settings()["health"]["checks"][check]
    predicted = data.get("outcome") or data["outcome_by_failure"][failure]
    lab.switch("affinity" if "affinity" in lab.config.modes else lab.config.mode,
               [b.name for b in lab.config.backends], flush=True)
    lab.clear_gateways()
    evidence: dict[str, Any] = {"check": check, "failure": f"{VICTIM}'s charon {failure}"}
    fall = int(monitor_settings(lab)["fall"])
    with monitored_crowd(lab, check, Crowd.for_lab(lab.inventory, count=clients)) as crowd:
        up = lab.wait(lambda: sorted(live(lab)) == sorted(b.name for b in lab.config.backends), detection_budget(lab))
        if up is None:
            return Verdict.inconclusive(_expect(HEALTH, predicted, ""), "monitor-never-saw-all-up",
                                        f"the {check} monitor did not report every healthy gateway up within "
                                        f"{detection_budget(lab):.1f} s", {**evidence, "live": live(lab)})
        lab.fail_gateway(VICTIM, failure)
        failed_in = monitor_round(lab)
        try:
            # Out, or kept in by a monitor that has judged it `fall` times since the failure
            # (rounds that began after it: the one under way may have checked before):
            # its rule takes a gateway out after `fall` failed checks, so it never will.
            # The detection budget bounds a monitor that stops counting rounds.
            judged = lab.wait(lambda: VICTIM not in live(lab) or monitor_round(lab) > failed_in + fall,
                              detection_budget(lab))
            took = judged if judged is not None and VICTIM not in live(lab) else None
            evidence["seconds until the monitor took it out"] = None if took is None else round(took, 2)
            if took is None and judged is not None:
                evidence["monitor rounds since the failure, gateway kept in"] = monitor_round(lab) - failed_in
            evidence["live gateways after the failure"] = live(lab)
            attempts = crowd.connect()
            sas = crowd.sas()
        finally:
            lab.restore_gateway(VICTIM)
        failed = [a for a, t in attempts.items() if not t.connected]
        served = {a: lab.backend_of_pool(sa.get("virtual_ip")) for a, sa in sas.items()}
        evidence.update({"new clients": len(attempts), "failed": len(failed),
                         "served by": {gw: sum(1 for v in served.values() if v == gw)
                                       for gw in (b.name for b in lab.config.backends)}})
        back = lab.wait(lambda: VICTIM in live(lab), detection_budget(lab) + 5)
        evidence["seconds until it was back in"] = None if back is None else round(back, 2)
    lab.clear_gateways()
    if took is not None and not failed:
        observed = "taken-out"
    elif took is None and failed:
        observed = "keeps-sending"
    else:
        observed = "taken-out-late" if took is not None else "kept-but-no-failures"
    figures = (f"{len(failed)} of {len(attempts)} new clients failed; the monitor "
               + (f"took {VICTIM} out after {took:.1f} s" if took is not None else f"kept {VICTIM} in"))
    if check == "ike":
        exp = _expect(HEALTH, "taken-out", f"{data['reason']}; measured: {figures}")
    else:
        # a plain UDP check, as a known mistake: what it does depends on how the gateway fails
        why = (data["reason"] if predicted == "keeps-sending" else "the kernel answers a datagram to the stopped "
               "daemon's port with ICMP port unreachable, which even a plain UDP check notices")
        exp = _expect(HEALTH, predicted, f"{why}; measured: {figures}", data.get("fix", ""))
    return Verdict.compare(exp, observed, evidence)


# -- failover --------------------------------------------------------------------------

def failover_cell(lab: LabBalancer, clients: int = 50, newcomers: int = 20, timeout: float = 40.0,
                  artifacts: Path | None = None) -> Verdict:
    """Clients connected through both gateways; VICTIM's charon stops. Its clients' DPD
    notices, they re-initiate through the VIP, the monitor has taken VICTIM out: all must
    end established on the others, none half-connected. Then VICTIM returns and new
    clients spread over both again."""
    mode = "affinity" if "affinity" in lab.config.modes else lab.config.mode
    lab.switch(mode, [b.name for b in lab.config.backends], flush=True)
    lab.clear_gateways()
    timers = Timers(dpd_delay=1, dpd_action="restart", retransmit_tries=2)
    evidence: dict[str, Any] = {"mode": mode, "clients": clients,
                                "dead peer detection": "after 1 s of quiet, dead after 2 retransmits (~1.2 s), then "
                                                       "restart"}
    log = artifacts / "clients-charon.log" if artifacts else None
    with monitored_crowd(lab, "ike", Crowd.for_lab(lab.inventory, count=clients + newcomers, timers=timers,
                                                    keep_log=log)) as crowd:
        first, later = crowd.addresses[:clients], crowd.addresses[clients:]
        lab.wait(lambda: len(live(lab)) == len(lab.config.backends), detection_budget(lab))
        attempts = crowd.connect(first)
        before = _served(lab, crowd)
        on_victim = [a for a in first if before.get(a) == VICTIM]
        evidence.update({"connected before": sum(t.connected for t in attempts.values()),
                         "on each gateway before": _count(before, lab), f"clients on {VICTIM}": len(on_victim)})
        began = time.monotonic()
        lab.fail_gateway(VICTIM, "stopped")
        try:
            def settled() -> bool:
                now = _served(lab, crowd)
                return all(now.get(a) not in (None, VICTIM) for a in first)
            took = lab.wait(settled, timeout, step=0.2)
            sas = crowd.sas()
            after = _served(lab, crowd)
            half = [a for a in first if (sas.get(a) or {}).get("state") not in (None, "ESTABLISHED")]
            missing = [a for a in first if a not in sas]
            moved = [a for a in on_victim if after.get(a) not in (None, VICTIM)]
            evidence.update({f"re-established elsewhere (of {len(on_victim)})": len(moved),
                             "seconds until every client was established again": None if took is None else round(took, 1),
                             "half-connected at the end": len(half), "without an SA at the end": len(missing),
                             "on each gateway after": _count(after, lab),
                             "seconds since the failure": round(time.monotonic() - began, 1)})
        finally:
            lab.restore_gateway(VICTIM)
        back = lab.wait(lambda: VICTIM in live(lab), detection_budget(lab) + 5)
        evidence["seconds until the monitor took it back"] = None if back is None else round(back, 1)
        crowd.connect(later)
        spread_again = _count({a: v for a, v in _served(lab, crowd).items() if a in later}, lab)
        evidence[f"{len(later)} new clients after its return, per gateway"] = spread_again
    lab.clear_gateways()
    ok_move = took is not None and not half and not missing and len(moved) == len(on_victim)
    ok_spread = all(n > 0 for n in spread_again.values())
    observed = ("moved-and-spread-again" if ok_move and ok_spread else
                "moved-but-not-spread-again" if ok_move else "clients-left-behind")
    figures = (f"{len(moved)} of {len(on_victim)} clients of {VICTIM} re-established on another gateway"
               + (f" within {took:.1f} s" if took is not None else f", not all within {timeout:.0f} s")
               + f", {len(half)} half-connected; after its return new clients went {spread_again}")
    exp = _expect(FAILOVER, "moved-and-spread-again",
                  f"dead peer detection on the clients and an IKE-aware monitor on the balancer move every client "
                  f"of a failed gateway to the others; measured: {figures}",
                  "monitor IKE on the balancer with reselect on service down, and keep DPD on in the client profile")
    return Verdict.compare(exp, observed, evidence)


def _served(lab: LabBalancer, crowd: Crowd) -> dict[str, str | None]:
    return {a: (lab.backend_of_pool(sa.get("virtual_ip")) if sa.get("state") == "ESTABLISHED" else None)
            for a, sa in crowd.sas().items()}


def _count(served: dict[str, str | None], lab: LabBalancer) -> dict[str, int]:
    return {b.name: sum(1 for v in served.values() if v == b.name) for b in lab.config.backends}


# -- rekey and DPD -----------------------------------------------------------------------

def _rekeyed(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(clients whose IKE SA was rekeyed, clients with a new CHILD SA) between two SA lists."""
    kept = [a for a in before if (after.get(a) or {}).get("state") == "ESTABLISHED"]
    ike = [a for a in kept if after[a].get("ike_id") != before[a].get("ike_id")
           or after[a].get("spi_i") != before[a].get("spi_i")]
    child = [a for a in kept if {c.get("spi_in") for c in after[a]["children"].values()}
             - {c.get("spi_in") for c in (before[a].get("children") or {}).values()}]
    return ike, child


def rekey_cell(lab: LabBalancer, mode: str, clients: int = 20, ike_rekey: int = 2, child_rekey: int = 1,
               watch: float = 3.0) -> Verdict:
    # Watched from when the last client is up until every client has rekeyed both SAs, for
    # at most longer than the IKE SA lifetime plus the rekey exchange itself. Only the
    # clients rekey (the gateways keep charon's hours), so their rekeys never collide with
    # the peer's.
    lab.switch(mode, [b.name for b in lab.config.backends], flush=True)
    lab.clear_gateways()
    timers = Timers(dpd_delay=2, ike_rekey=ike_rekey, child_rekey=child_rekey, dpd_action="clear")
    with Crowd.for_lab(lab.inventory, count=clients, timers=timers) as crowd:
        attempts = crowd.connect()
        before = crowd.sas()
        served_before = {a: lab.backend_of_pool(sa.get("virtual_ip")) for a, sa in before.items()}
        began = time.monotonic()

        def everyone_rekeyed() -> bool:
            now = crowd.sas()
            ike, child = _rekeyed(before, now)
            return len(ike) == len(child) == len(before) == clients
        lab.wait(everyone_rekeyed, watch, step=0.2)
        watched = time.monotonic() - began
        after = crowd.sas()
        gateway = lab.gateway_sas()
    lab.clear_gateways()
    connected = [a for a, t in attempts.items() if t.connected]
    kept = [a for a in connected if (after.get(a) or {}).get("state") == "ESTABLISHED"]
    ike_rekeyed, child_rekeyed = _rekeyed({a: before[a] for a in kept}, after)
    same_backend = [a for a in kept if lab.backend_of_pool(after[a].get("virtual_ip")) == served_before.get(a)]
    established_at_gateways = sum(1 for sas in gateway.values() for sa in sas if sa.get("state") == "ESTABLISHED")
    evidence = {"mode": mode, "clients": clients, "connected": len(connected),
                "IKE SA rekey every (s)": ike_rekey, "CHILD SA rekey every (s)": child_rekey, "DPD every (s)": 2,
                "watched (s)": round(watched, 1), "watched at most (s)": watch, "still established": len(kept),
                "IKE SA rekeyed": len(ike_rekeyed), "CHILD SA rekeyed": len(child_rekeyed), "on the same gateway": len(same_backend),
                "established IKE SAs at the gateways": established_at_gateways}
    ok = (len(connected) == clients and len(kept) == clients and len(ike_rekeyed) == clients
          and len(child_rekeyed) == clients and len(same_backend) == clients and established_at_gateways == clients)
    observed = "kept" if ok else "lost-or-not-rekeyed"
    figures = (f"{len(kept)} of {clients} still established after {watched:.1f} s, {len(ike_rekeyed)} IKE and "
               f"{len(child_rekeyed)} CHILD SAs rekeyed, {len(same_backend)} on the same gateway, "
               f"{established_at_gateways} established at the gateways")
    exp = _expect(REKEY, "kept", f"rekeys and DPD travel the client's existing UDP 4500 flow, which the balancer "
                  f"keeps on its gateway; measured: {figures}",
                  "make the balancer's UDP idle and persistence timeouts longer than the rekey and DPD intervals")
    return Verdict.compare(exp, observed, evidence)


# -- SSTP through HAProxy -----------------------------------------------------------------

SSTP = "AOVPN-LB-SSTP-001"


def haproxy_servers(lab: LabBalancer) -> dict[str, dict[str, str]]:
    """HAProxy's own view of its SSTP servers (stats socket): status, check result and the
    HTTP status its health monitor got."""
    import csv
    import io
    import socket
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(5)
    sock.connect(str(lab.state / "haproxy" / "haproxy.sock"))
    sock.sendall(b"show stat\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
    return {r["svname"]: {"status": r["status"], "check": r.get("check_status", ""), "code": r.get("check_code", "")}
            for r in rows if r["pxname"] == "sstp_servers" and r["svname"] not in ("FRONTEND", "BACKEND")}


def _sstp_pool_of(lab: LabBalancer, address: str | None) -> str | None:
    import ipaddress
    if not address:
        return None
    for b in lab.config.backends:
        nat_host = (lab.inventory.host(b.name).var("sstp_gateway") or {}).get("ping_target")
        if nat_host and ipaddress.ip_address(address) in ipaddress.ip_network(f"{nat_host}/24", strict=False):
            return b.name
    return None


def sstp_cell(lab: LabBalancer, gateway, sources: int = 4, repeats: int = 2) -> Verdict:
    """SSTP to the VIP from several client addresses, each a few times: every client must
    stay on one server and clients must reach both; then one server's SSTP service hangs
    (frozen: TCP still completes, HTTP never answers) and the balancer's HTTP monitor must
    take it out while new connections go to the other."""
    from ..sstp.probe import probe_sstp
    from ..sstp.softether import SoftEtherInstance
    from ..sstp.transport import open_tcp
    from .crowd import client_addresses
    crowd_spec = lab.config.crowd
    assert crowd_spec is not None and lab.inventory.lab is not None
    # Addresses after the ones an IKEv2 crowd may use (at most clients.max, from the first):
    # such a crowd may be connecting through the same balancer on another worker meanwhile.
    crowd_spec.check_count(crowd_spec.max + sources, key="load_balancer.clients.max plus the SSTP clients",
                           where=lab.inventory.one("load_balancers").where("load_balancer"))
    crowd = dataclasses.replace(Crowd.for_lab(lab.inventory, count=sources),
                                addresses=crowd_spec.addresses(crowd_spec.max + sources)[-sources:])
    port = int(lab.config.sstp.get("port", 443))

    def connect(src: str) -> tuple[str | None, str]:
        r = probe_sstp(lab.config.vip, port, user=gateway.user, password=gateway.password,
                       ca_file=str(gateway.ca_file) if gateway.ca_file else None, sni=gateway.identity,
                       timeout=10, netns=crowd.netns, source=src)
        return (_sstp_pool_of(lab, r.ip) if r.connected else None), (r.cause if not r.connected else "connected")

    evidence: dict[str, Any] = {"monitor": dict(lab.config.sstp.get("monitor") or {}),
                                "HAProxy's view before": haproxy_servers(lab)}
    client_addresses(crowd.netns, crowd.interface, crowd.addresses, "add")
    try:
        # Each client's connections one after another (persistence is per client), the
        # clients at the same time, as a site's users connect.
        with ThreadPoolExecutor(max_workers=crowd.concurrency) as pool:
            seen = dict(zip(crowd.addresses, pool.map(lambda src: [connect(src)[0] for _ in range(repeats)],
                                                      crowd.addresses)))
        evidence["server per connection, per client"] = seen
        sticky = all(len(set(v)) == 1 and v[0] is not None for v in seen.values())
        spread = {b.name: sum(1 for v in seen.values() if v and v[0] == b.name) for b in lab.config.backends}
        instance = SoftEtherInstance(lab.inventory.lab.host_dir(VICTIM) / "softether", lab.gateway_netns[VICTIM])
        pids = instance.daemon.pids()  # its watchdog and the server it forked
        assert pids, f"{VICTIM}: SoftEther is not running"
        victim_addr = lab.config.backend(VICTIM).address
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)  # the service hangs; the kernel still accepts TCP
        try:
            took = lab.wait(lambda: haproxy_servers(lab).get(VICTIM, {}).get("status", "").startswith("DOWN"),
                            detection_budget(lab) + 3)
            evidence["seconds until HAProxy marked it down"] = None if took is None else round(took, 2)
            evidence["HAProxy's view after"] = haproxy_servers(lab)
            try:
                s, _ = open_tcp(victim_addr, port, 2.0)
                s.close()
                tcp_check = "up (TCP handshake completes although SSTP hangs)"
            except Exception as exc:  # a TCP check's view, for contrast: evidence only
                tcp_check = f"down ({exc})"
            evidence[f"a plain TCP check of {VICTIM}:{port} would say"] = tcp_check
            with ThreadPoolExecutor(max_workers=crowd.concurrency) as pool:
                after = dict(zip(crowd.addresses, pool.map(connect, crowd.addresses)))
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        evidence["server per client while it hangs"] = {k: v[0] or v[1] for k, v in after.items()}
        lab.wait(lambda: haproxy_servers(lab).get(VICTIM, {}).get("status", "") == "UP", detection_budget(lab) + 5)
    finally:
        client_addresses(crowd.netns, crowd.interface, crowd.addresses, "del")
    moved = all(v[0] not in (None, VICTIM) for v in after.values())
    answers = {k: v.get("code") for k, v in evidence["HAProxy's view before"].items()}
    evidence["monitor answers (HTTP status per server)"] = answers
    evidence["RRAS answers"] = 401
    observed = ("sticky-spread-and-taken-out" if sticky and all(spread.values()) and took is not None and moved
                else "not-sticky" if not sticky else "not-spread" if not all(spread.values())
                else "kept-a-hung-server")
    figures = (f"{sum(1 for v in seen.values() if len(set(v)) == 1)} of {len(seen)} clients stayed on one server over "
               f"{repeats} connections, spread {spread}; the HTTP monitor took the hung {VICTIM} out "
               + (f"after {took:.1f} s" if took is not None else "not at all")
               + f"; lab servers answer the monitor with {sorted(set(answers.values()))} (RRAS: 401)")
    exp = _expect(SSTP, "sticky-spread-and-taken-out",
                  f"source persistence keeps a client on one SSTP server, and the HTTP monitor (not a TCP check) "
                  f"notices a server whose SSTP service hangs; measured: {figures}",
                  "balance by source address (or TLS session), and monitor HEAD /sra_{...}/ expecting 401")
    return Verdict.compare(exp, observed, evidence)


# -- SSTP behind a TLS-offloading balancer ---------------------------------------------

OFFLOAD_CASES = {
    # case -> whose certificate hash the servers are configured with, and what must happen
    "server-configured-with-the-balancers-certificate-hash": ("balancer", "connected"),
    "server-left-with-its-own-certificate-hash": ("own", "crypto-binding-rejected"),
}


def tls_offload_cell(lab: LabBalancer, gateway, case: str) -> Verdict:
    """SSTP through HAProxy ending TLS with its own certificate (another one than the
    servers'), to the reference SSTP server on each gateway (the lab's stand-in for RRAS's
    binding check). The client's crypto binding covers the certificate it saw - the
    balancer's - so a server must be told that hash (RRAS: SstpSvc\\Parameters
    SHA256CertificateHash); left with its own, it refuses the binding."""
    import socket as socketlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from ..ike.craft_netns import run_in_netns
    from ..sstp.probe import probe_sstp
    from ..sstp.refserver import ReferenceServerThread, RefServerConfig
    believed, expected_outcome = OFFLOAD_CASES[case]
    port = int(lab.config.sstp.get("tls_offload_port") or 0)
    if not port:
        return Verdict.not_applicable(SSTP, "the inventory's balancer has no TLS-offload listener "
                                            "(load_balancer.sstp.tls_offload_port)")
    assert lab.inventory.lab is not None
    pki = lab.inventory.lab.state_root / "pki"
    identity = gateway.identity
    own_dir = Path(gateway.ca_file).parent if gateway.ca_file else pki / "small"
    offload_dir = pki / "large"  # the balancer's certificate (playbooks/roles/balancer: balancer_offload_profile)

    def der(path: Path) -> bytes:
        return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)

    own, seen = der(own_dir / f"{identity}.cert.pem"), der(offload_dir / f"{identity}.cert.pem")
    config = RefServerConfig(users={gateway.user: gateway.password}, cert_der=own,
                             expected_cert_der=seen if believed == "balancer" else own,
                             server_ip="198.19.6.1", client_ip="198.19.6.10", dns="198.19.6.53")

    def listener(address: str):
        def bind():
            sock = socketlib.socket()
            sock.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(4)
            return sock
        return bind

    with contextlib.ExitStack() as stack:
        servers = {b.name: stack.enter_context(ReferenceServerThread(
            run_in_netns(lab.gateway_netns[b.name], listener(b.address)), str(own_dir / f"{identity}.cert.pem"),
            str(own_dir / f"{identity}.key.pem"), config)) for b in lab.config.backends}
        crowd_netns = lab.inventory.lab.namespace(lab.config.crowd.host if lab.config.crowd else "probe")
        result = probe_sstp(lab.config.vip, port, user=gateway.user, password=gateway.password,
                            ca_file=str(offload_dir / "ca.pem"), sni=identity, timeout=8.0, netns=crowd_netns)
    logs = {name: s.logs[-1] for name, s in servers.items() if s.logs}
    observed = "connected" if result.connected else result.cause
    verdicts = {name: ("verified" if log.binding_ok else "rejected") if log.binding_ok is not None
                else "no CALL_CONNECTED" for name, log in logs.items()}
    evidence = {"client saw": f"the balancer's certificate ({offload_dir.name} profile) on {lab.config.vip}:{port}",
                "server configured with the hash of": "the balancer's certificate" if believed == "balancer"
                else "its own certificate", "server (reference SSTP server, the lab's stand-in for RRAS's check)":
                verdicts, "client": observed, "client detail": result.to_json().get("detail") or "-"}
    server_says = next((log.binding_ok for log in logs.values() if log.binding_ok is not None), None)
    exp = _expect(SSTP, expected_outcome,
                  "behind a TLS-offloading balancer the client's crypto binding covers the balancer's certificate: "
                  + ("a server told that hash verifies it" if believed == "balancer"
                     else "a server left with its own certificate's hash refuses it (CALL_ABORT), as RRAS does"),
                  "set SstpSvc\\Parameters SHA256CertificateHash on every server to the hash of the balancer's "
                  "certificate (and UseHttps=0 when the balancer sends plain HTTP)")
    if server_says is None or (observed == "connected") != server_says:
        return Verdict.inconclusive(exp, observed, f"the client observed {observed}, the servers said {verdicts}",
                                    evidence)
    return Verdict.compare(exp, observed, evidence)
