"""One IKEv2 connection attempt, and why it failed when it did.

The conformance suite and `aovpn-lab probe ikev2` share this code path: a charon (the
lab client's, or a private one) loads a connection for the client profile, initiates
it, and the result carries the evidence: message sizes, packets, IKE fragments,
retransmits, the negotiated proposal, elapsed time.

A client sees only silence when a message is lost, so silence is explained by a
differential test from the same network namespace (ike.craft.reachability): small
IKE_SA_INIT to UDP 500 and 4500 and an IP-fragmented one, each answered or not by the
gateway itself. It runs beside the attempt, not after it, and both give up on an
unanswered request by the same rule, a multiple of the round trip measured on the
attempt (ike.giveup, docs/timing.md): the suite terminates the attempt then, instead of
waiting for charon's own retransmissions to run out.

    >>> result = run_probe(vici_path, target, profiles.get())   # doctest: +SKIP
    >>> result.connected, result.cause, result.elapsed_ms                # doctest: +SKIP
    (True, 'none', 31)
"""
from __future__ import annotations

import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AovpnError
from ..results import Phase, causes, probe_result
from . import eap
from . import messages as ikemsg
from .giveup import GiveUpRule, RoundTrips, WatchedInitiation
from .halfopen import Ledger, default_path
from . import profiles
from .profiles import ClientProfile
from .session import ViciSession

CAUSES = causes.names("ikev2")  # profiles/causes.yml

AUTH_FAILURE_MARKERS = (
    "AUTHENTICATION_FAILED", "constraint check failed", "no trusted", "no private key found",
    "no issuer certificate found", "certificate was revoked", "with pre-shared key failed",
) + tuple(eap.EAP_FAILURE_MARKERS)
AUTH_METHODS = ("pubkey", "eap-tls")
AUTH_FAILED = ("authentication of", "failed")


@dataclass(repr=False)
class IkeTarget:
    """What to connect to and with which credentials. The key never appears in repr or JSON."""
    gateway: str
    remote_id: str
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    local_id: str | None = None
    remote_ts: str = "0.0.0.0/0"
    chain_pem: bytes = b""   # intermediate CA certificates sent with the client's certificate
    auth: str = "pubkey"     # pubkey: machine certificate (device tunnel); eap-tls: user tunnel
    aaa_id: str | None = None  # eap-tls: the RADIUS server's identity the client expects
    aaa_ca_pem: bytes = b""    # eap-tls: the CA of the RADIUS server's certificate (and of user certificates)

    def __repr__(self) -> str:
        return (f"IkeTarget(gateway={self.gateway!r}, remote_id={self.remote_id!r}, local_id={self.local_id!r}, "
                f"auth={self.auth!r})")


@dataclass
class IkeProbeResult(probe_result.ProbeResult):
    protocol = "ikev2"
    elapsed_ms: int
    gateway: str
    profile: str
    ike_sa: bool = False
    child_sa: bool = False
    proposal: str = ""
    child_proposal: str = ""
    virtual_ip: str = ""
    messages: list[ikemsg.IkeMessage] = field(default_factory=list)
    reachability: dict[str, Any] | None = None
    # The client's IKE SA as charon reports it (vici list-sas): NAT detected from the NAT-D
    # payloads (local: this client is behind NAT; remote: the gateway is), encapsulation
    # forced without NAT (fake: kernel-libipsec always sends ESP in UDP), and the ports used.
    nat: dict[str, Any] = field(default_factory=dict)
    # With a half-open ledger: whether this attempt left a half-open SA on the gateway, how
    # many this client may have left there now, and how long it waited before trying.
    half_open: dict[str, Any] = field(default_factory=dict)
    # When the attempt would have been given up, measured and configured (giveup.RoundTrips),
    # and what was given up, if anything.
    timing: dict[str, Any] = field(default_factory=dict)

    # The initiator SPIs of the differential test's probes, sent beside the attempt.
    differential_sas: list[str] = field(default_factory=list)

    def differential_spis(self) -> set[bytes]:
        """The SAs of the differential test (captures of the attempt leave them out)."""
        return {bytes.fromhex(s) for s in self.differential_sas}

    def size(self, exchange: str, kind: str) -> int | None:
        m = ikemsg.find(self.messages, exchange, kind)
        return m.size if m else None

    def to_json(self) -> dict[str, Any]:
        d = super().to_json()
        d["messages"] = [m.to_json() for m in self.messages]
        d["sizes"] = {f"{e}_{k}": self.size(e, k) for e in ("IKE_SA_INIT", "IKE_AUTH")
                      for k in ("request", "response")}
        return d

    def title(self) -> str:
        return f"IKEv2 to {self.gateway} ({self.profile})"

    def summary_rows(self) -> list[tuple[str, Any]]:
        return [("IKE proposal", self.proposal), ("ESP proposal", self.child_proposal),
                ("virtual IP", self.virtual_ip)]

    def summary_lines(self) -> list[str]:
        lines = super().summary_lines()
        for m in self.messages:
            frag = f", {m.ike_fragments} IKE fragments" if m.ike_fragments else ""
            rt = f", {m.retransmits} retransmits" if m.retransmits else ""
            lines.append(f"  {m.direction:<8} {m.exchange} {m.kind} #{m.message_id}: {m.size} B in "
                         f"{m.packets} packet(s){frag}{rt}")
        return lines + self.ping_line()


def stages(result: IkeProbeResult) -> list[Phase]:
    """The phases an IKEv2 attempt reached, read from charon's log and SA. The exchanges
    carry no timings of their own (charon's log has none; ``elapsed_ms`` covers them all);
    the ping through the tunnel does.

    >>> r = IkeProbeResult(False, "udp-4500-blocked", 3000, "gw", "p", messages=[
    ...     ikemsg.IkeMessage("sent", "IKE_SA_INIT", "request", 0),
    ...     ikemsg.IkeMessage("received", "IKE_SA_INIT", "response", 0),
    ...     ikemsg.IkeMessage("sent", "IKE_AUTH", "request", 1)])
    >>> [(p.name, p.ok) for p in stages(r)]
    [('ike-sa-init', True), ('ike-auth', False)]
    """
    answered = {m.exchange for m in result.messages if m.direction == "received" and m.kind == "response"}
    sent = {m.exchange for m in result.messages if m.direction == "sent" and m.kind == "request"}
    phases = [Phase("ike-sa-init", 0, ok="IKE_SA_INIT" in answered or result.ike_sa)]
    if "IKE_AUTH" in sent or result.ike_sa:
        phases.append(Phase("ike-auth", ok=result.ike_sa))
    if result.ike_sa:  # the first CHILD_SA comes with IKE_AUTH (RFC 7296 1.2)
        phases.append(Phase("child-sa", ok=result.child_sa))
    if result.ping:
        phases.append(Phase("ping", result.elapsed_ms, result.ping_ms, result.ping_ok))
    return phases


def connection_config(target: IkeTarget, profile: ClientProfile) -> dict[str, Any]:
    if target.auth == "eap-tls":
        return eap.connection_config_eap_tls(target, profile, aaa_id=target.aaa_id)
    if target.auth != "pubkey":
        raise AovpnError(f"unknown authentication '{target.auth}'", hint=f"use one of {', '.join(AUTH_METHODS)}")
    local: dict[str, Any] = {"auth": "pubkey", "certs": [target.cert_pem]}
    if target.local_id:
        local["id"] = target.local_id
    return {
        "version": "2",
        "remote_addrs": [target.gateway],
        "proposals": list(profile.ike),
        "fragmentation": "yes" if profile.fragmentation else "no",
        "vips": ["0.0.0.0"],
        "send_cert": "always",
        "keyingtries": "1",
        "local": local,
        "remote": {"auth": "pubkey", "id": target.remote_id, "cacerts": [target.ca_pem]},
        "children": {"tunnel": {"remote_ts": [target.remote_ts], "esp_proposals": list(profile.esp),
                                "start_action": "none"}},
    }


def run_probe(vici_path: str | Path, target: IkeTarget, profile: ClientProfile, *, netns: str | None = None,
              ping: str | None = None, timeout: float = 10.0, explain: bool = True,
              name: str = "aovpn-probe", ledger: Ledger | None = None,
              rule: GiveUpRule | None = None) -> IkeProbeResult:
    """Connect once; leave charon as it was found (connection unloaded, SA terminated).

    `explain`: run the differential test beside the attempt and name the cause of a
    silence with it. `rule`: when an unanswered request is given up (default: the lab's,
    profiles/charon.yml). With a `ledger`, first wait out the gateway's DoS protection
    where this client's own earlier attempts could have triggered it, and record a
    half-open SA this one leaves."""
    # room=1: this attempt may leave one more, and the differential test must still be answered
    waited = ledger.before_attempt(netns, target.gateway, room=1) if ledger is not None else 0.0
    result = _attempt(vici_path, target, profile, netns=netns, ping=ping, timeout=timeout, explain=explain,
                      name=name, rule=rule or GiveUpRule.from_settings())
    if ledger is not None:
        result.half_open = {"left": ledger.after_attempt(netns, target.gateway, result.messages, result.ike_sa),
                            "pending": ledger.pending(netns, target.gateway), "threshold": ledger.threshold,
                            "waited_s": round(waited, 1)}
    return result


def _attempt(vici_path: str | Path, target: IkeTarget, profile: ClientProfile, *, netns: str | None,
             ping: str | None, timeout: float, explain: bool, name: str, rule: GiveUpRule) -> IkeProbeResult:
    with ViciSession(vici_path, timeout=timeout + 5) as s:
        s.terminate(name)  # a leftover from an interrupted run would confuse the result
        if target.auth == "eap-tls":
            # EAP-TLS picks the client certificate by identity from everything loaded: a
            # leftover with the same name from an earlier cell must not be the one sent.
            s.s.clear_creds()
        s.load_cert(target.ca_pem, flag="CA")
        if target.aaa_ca_pem:
            s.load_cert(target.aaa_ca_pem, flag="CA")
        # charon sends the intermediates it holds (send_cert = always): load each as a CA certificate.
        for pem in eap.split_pem(target.chain_pem):
            s.load_cert(pem, flag="CA")
        s.load_key(target.key_pem)
        s.load_conn(name, connection_config(target, profile))
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="differential") if explain else None
        began = time.monotonic()
        initiation = WatchedInitiation(s, vici_path, name, "tunnel", timeout, rule)
        trips = initiation.trips
        beside = pool.submit(reachability, target.gateway, netns, trips=trips) if pool else None
        initiation.wait()
        elapsed_ms = int((time.monotonic() - began) * 1000)
        lines = initiation.lines
        result = IkeProbeResult(connected=False, cause="no-response", elapsed_ms=elapsed_ms,
                                gateway=target.gateway, profile=profile.name, messages=ikemsg.parse(lines), log=lines)
        result.timing = initiation.evidence(result.messages)
        try:
            if initiation.ok:
                _read_sa(s.list_sa(name), result)
            if result.child_sa:
                result.cause = "none"
                result.connected = True
                if ping:
                    result.ping = ping
                    pinged = time.monotonic()
                    result.ping_ok = ping_through(ping, netns)
                    result.ping_ms = int((time.monotonic() - pinged) * 1000)
                    if not result.ping_ok:
                        result.connected = False
                        result.cause = "no-response"
                        result.detail = f"tunnel up, but ping {ping} through it got no answer"
            else:
                result.cause, result.detail = classify_failure(lines, initiation.error, result.messages)
            if beside is not None:
                if not _silent(result):
                    trips.settle()  # nothing to explain: stop waiting for the probes
                reach = _finished(beside, timeout)
                result.differential_sas = sorted(p["spi"] for p in (reach or {}).get("probes", {}).values()
                                                 if p.get("spi"))
                _explain(result, reach)
        finally:
            if pool is not None:
                pool.shutdown(wait=False)
            s.terminate(name)
            s.unload_conn(name)
    result.phases = stages(result)
    return result


def _finished(future: Future, timeout: float) -> dict[str, Any] | None:
    try:
        return future.result(timeout=timeout)
    except Exception as exc:  # the differential test explains; its failure must not hide the attempt's result
        return {"verdict": "no-response", "explanation": f"the differential test failed: {exc}", "probes": {},
                "error": str(exc)}


def _silent(result: IkeProbeResult) -> bool:
    """A failure without an answer that names it: what the differential test explains."""
    return not result.connected and result.cause == "no-response" and not result.ike_sa


def _explain(result: IkeProbeResult, reach: dict[str, Any] | None) -> None:
    """Turn a silent failure into a named cause with the differential test (run from the
    same namespace as the attempt, at the same time)."""
    if reach is None or not _silent(result):
        return
    result.reachability = reach
    if reach.get("error"):
        result.detail = f"{result.detail}; {reach['explanation']}"
        return
    result.cause, result.detail = explain_silence(result.messages, reach)


def _read_sa(sa: dict[str, Any] | None, result: IkeProbeResult) -> None:
    if not sa:
        return
    result.ike_sa = sa.get("state") == "ESTABLISHED"
    parts = [sa.get("encr-alg", ""), sa.get("encr-keysize", ""), sa.get("integ-alg", ""), sa.get("prf-alg", ""),
             sa.get("dh-group", "")]
    result.proposal = "/".join(p for p in parts if p)
    result.nat = {"local": sa.get("nat-local") == "yes", "remote": sa.get("nat-remote") == "yes",
                  "forced": sa.get("nat-fake") == "yes", "local_port": sa.get("local-port"),
                  "remote_port": sa.get("remote-port")}
    vips = sa.get("local-vips") or []
    result.virtual_ip = ",".join(vips) if isinstance(vips, list) else str(vips)
    for child in (sa.get("child-sas") or {}).values():
        if child.get("state") == "INSTALLED":
            result.child_sa = True
            cparts = [child.get("encr-alg", ""), child.get("encr-keysize", ""), child.get("integ-alg", ""),
                      child.get("dh-group", "")]
            result.child_proposal = "/".join(p for p in cparts if p)


def classify_failure(lines: list[str], error: str, msgs: list[ikemsg.IkeMessage]) -> tuple[str, str]:
    """What charon's own log says about a failed attempt (silence is explained elsewhere)."""
    text = "\n".join(lines)
    if "NO_PROPOSAL_CHOSEN" in text:
        return ("no-proposal-chosen", "the gateway accepted none of the client's proposals (NO_PROPOSAL_CHOSEN; "
                "Windows error 13868)")
    if any(m in text for m in AUTH_FAILURE_MARKERS) or any(
            l.startswith(AUTH_FAILED[0]) and AUTH_FAILED[1] in l for l in lines):
        first = next((l for l in lines if any(m in l for m in AUTH_FAILURE_MARKERS) or
                      (l.startswith(AUTH_FAILED[0]) and AUTH_FAILED[1] in l)), "")
        return "auth-failed", f"authentication failed: {first}"
    outstanding = _outstanding_request(msgs)
    if outstanding is not None:
        return "no-response", f"no answer to {outstanding.exchange} after {outstanding.retransmits} retransmits"
    return "no-response", error or "charon reported no reason"


def _outstanding_request(msgs: list[ikemsg.IkeMessage]) -> ikemsg.IkeMessage | None:
    answered = {(m.exchange, m.message_id) for m in msgs if m.direction == "received" and m.kind == "response"}
    for m in msgs:
        if m.direction == "sent" and m.kind == "request" and (m.exchange, m.message_id) not in answered:
            return m
    return None


def explain_silence(msgs: list[ikemsg.IkeMessage], reach: dict[str, Any]) -> tuple[str, str]:
    """Combine what was lost (from charon's log) with what the path lets through."""
    lost = _outstanding_request(msgs)
    verdict = reach.get("verdict", "no-response")
    where = f"{lost.exchange} request ({lost.size} B, {lost.packets} packet(s))" if lost else "the exchange"
    if lost is not None and lost.exchange == "IKE_SA_INIT":
        if verdict in ("udp-500-blocked", "no-response"):
            return verdict, f"{where} got no answer; {reach.get('explanation', '')}".strip()
    if lost is not None and lost.exchange != "IKE_SA_INIT":
        if lost.ike_fragments and verdict != "udp-4500-blocked":
            # RFC 7383 was in use and small packets to 4500 pass: the IKE fragments themselves
            # (too big for the path, or IP-fragmented on retransmit and then dropped) were lost.
            return ("ike-fragments-dropped", f"IKE_SA_INIT worked, {where} was sent as {lost.ike_fragments} "
                    "RFC 7383 fragments and none got an answer, while small UDP 4500 packets do: the fragments "
                    f"are larger than the path MTU or filtered (differential test: {verdict})")
        if verdict in ("udp-4500-blocked", "ip-fragments-dropped"):
            return verdict, f"IKE_SA_INIT worked, {where} was lost; {reach.get('explanation', '')}".strip()
        if lost.ike_fragments:
            return ("ike-fragments-dropped", f"IKE_SA_INIT worked, {where} was sent as {lost.ike_fragments} "
                    "RFC 7383 fragments and none got through, while small UDP 4500 packets do: the fragments "
                    "are larger than the path MTU or filtered")
    return verdict if verdict != "none" else "no-response", \
        f"{where} got no answer; differential test: {verdict}"


def reachability(gateway: str, netns: str | None, timeout: float = 0.5,
                 trips: RoundTrips | None = None) -> dict[str, Any]:
    """The differential test; `timeout` per probe (a gateway answers these in ~1 ms on a LAN,
    tens of ms across the Internet), or with `trips` the attempt's give-up rule."""
    from . import craft  # scapy: imported only when silence needs explaining
    if netns:
        from .craft_netns import run_in_netns
        return run_in_netns(netns, craft.reachability, gateway, timeout=timeout, trips=trips)
    return craft.reachability(gateway, timeout=timeout, trips=trips)


def ping_through(addr: str, netns: str | None, count: int = 1, wait: float = 1.0) -> bool:
    argv = ["ping", "-n", "-q", "-c", str(count), "-W", str(wait), addr]
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    return subprocess.run(argv, capture_output=True, timeout=count * wait + 5).returncode == 0


def read_pem(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AovpnError(f"cannot read {what} {path}: {exc.strerror}", hint=f"pass the {what} file") from None
    if b"-----BEGIN" not in data:
        raise AovpnError(f"{path} is not PEM ({what} expected)", hint="convert with `openssl x509 -inform der`")
    return data


def probe_from_cli(args: Any) -> IkeProbeResult:
    from .charon import PrivateCharon
    target = IkeTarget(gateway=args.gateway, remote_id=args.remote_id, ca_pem=read_pem(args.ca, "CA certificate"),
                       cert_pem=read_pem(args.cert, "client certificate"),
                       key_pem=read_pem(args.key, "private key"), local_id=args.local_id,
                       remote_ts=args.remote_ts,
                       chain_pem=read_pem(args.chain, "intermediate CA certificates") if args.chain else b"",
                       auth=args.auth, aaa_id=args.aaa_id)
    profile = profiles.get(args.profile)
    # An engineer runs the probe again and again: remember its half-open SAs between runs.
    with PrivateCharon() as charon:
        return run_probe(charon.vici, target, profile, ping=args.ping, timeout=args.timeout,
                         ledger=Ledger(default_path()), rule=GiveUpRule.from_settings(external=True))
