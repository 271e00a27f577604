"""Stateless IKEv2 reachability and policy probes (scapy contrib IKEv2 layers).

The trick that keeps every probe stateless on the responder (RFC 7296 1.2/3.4):
the KE payload carries a *decoy* Diffie-Hellman group that is in none of the
offered proposals.  A responder that accepts one of the proposals must then
answer ``INVALID_KE_PAYLOAD`` naming the group it wants; a responder that
accepts none answers ``NO_PROPOSAL_CHOSEN``.  Neither answer creates an IKE_SA,
so probing never fills the responder's half-open SA table (strongSwan ignores a
source address after 5 half-open SAs).

Public API (the building blocks live in their own modules and are re-exported):

* :func:`build_ike_sa_init` (:mod:`.sa_init`) - a well-formed IKE_SA_INIT request,
  optionally padded to an exact size so it gets IP-fragmented on the wire;
* :func:`parse_ike_answer` (:mod:`.answer`) - classify an answer (:class:`IkeAnswer`);
* :func:`exchange` and :func:`probe` (:mod:`.transport`) - one request/answer over
  plain UDP (non-ESP marker on 4500), the attempt as an :class:`ExchangeAttempt`;
* :func:`reachability` - UDP 500 / UDP 4500 / IP-fragment differential test;
* :func:`accepted_proposals` and :func:`preferred_group` - policy probes.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from . import transforms as tf
from .answer import IkeAnswer, parse_ike_answer
from .offer import as_group, as_proposals, decoy_group
from .sa_init import build_ike_sa_init, nat_detection_hash
from .transport import ExchangeAttempt, exchange, new_socket, probe, resolve
from .numbers import (
    IKE_PORT,
    IKE_SA_INIT,
    N_COOKIE,
    N_IKEV2_FRAGMENTATION_SUPPORTED,
    N_INVALID_KE_PAYLOAD,
    N_NAT_DETECTION_DESTINATION_IP,
    N_NAT_DETECTION_SOURCE_IP,
    N_NO_PROPOSAL_CHOSEN,
    NATT_PORT,
    NON_ESP_MARKER,
    PAD_VENDOR_ID_PREFIX,
)

__all__ = [
    "IKE_PORT",
    "NATT_PORT",
    "NON_ESP_MARKER",
    "IKE_SA_INIT",
    "N_NO_PROPOSAL_CHOSEN",
    "N_INVALID_KE_PAYLOAD",
    "N_COOKIE",
    "N_NAT_DETECTION_SOURCE_IP",
    "N_NAT_DETECTION_DESTINATION_IP",
    "N_IKEV2_FRAGMENTATION_SUPPORTED",
    "PAD_VENDOR_ID_PREFIX",
    "DEFAULT_REACH_PROPOSALS",
    "DEFAULT_CANDIDATES",
    "IkeAnswer",
    "ExchangeAttempt",
    "nat_detection_hash",
    "decoy_group",
    "build_ike_sa_init",
    "parse_ike_answer",
    "probe",
    "exchange",
    "reachability",
    "reachability_verdict",
    "accepted_proposals",
    "preferred_group",
]

# Broad offer for reachability probes: a gateway usually accepts one of these,
# which makes it answer INVALID_KE (decoy group); NO_PROPOSAL_CHOSEN is just as
# good an answer for reachability.  Group 1 (modp768) is left out so it can be
# the decoy.
DEFAULT_REACH_PROPOSALS = (
    "aes256-aes128-3des-sha256-sha384-sha1-modp2048-ecp256-ecp384-modp1024",
    "aes256gcm16-aes128gcm16-prfsha256-prfsha384-prfsha1-modp2048-ecp256-ecp384-modp1024",
)

# Typical Always On VPN policy candidates (Windows default, RRAS recommended
# standard and enhanced sets, strongSwan style).
DEFAULT_CANDIDATES = (
    "3des-sha1-modp1024",
    "aes256-sha1-modp1024",
    "aes128-sha256-modp2048",
    "aes256-sha256-modp2048",
    "aes128gcm16-prfsha256-modp2048",
    "aes128gcm16-prfsha256-ecp256",
    "aes256gcm16-prfsha384-ecp384",
)


def _send_init(gateway: str, port: int, proposals, *, timeout: float, tries: int,
               pad_to: int | None = None, ke_group=None, src_port: int | None = None,
               fragmentation_supported: bool = True, trips=None) -> ExchangeAttempt:
    """Build a stateless IKE_SA_INIT (decoy KE) for this socket and send it. With `trips`
    (giveup.RoundTrips), silence is given up on its rule, and an answer is a sample for it."""
    patience = trips.deadline if trips is not None else None
    props = as_proposals(proposals)
    group = decoy_group(props) if ke_group is None else as_group(ke_group)
    family, ip = resolve(gateway)
    result = None
    for _ in range(max(1, tries)):
        sock = new_socket(family, src_port)
        try:
            sock.connect((ip, port))
            local = sock.getsockname()[:2]
            spi = os.urandom(8)
            msg = build_ike_sa_init(props, group, spi=spi, src=local, dst=(ip, port), pad_to=pad_to,
                                    fragmentation_supported=fragmentation_supported)
            result = probe(ip, port, msg, timeout=timeout, sock=sock, patience=patience)
            if trips is not None and result.answered and result.rtt is not None:
                trips.learn(result.rtt, own=False)
            if result.answer is not None and result.answer.cookie:
                # The responder is rate-limiting half-open SAs: repeat with its cookie, as
                # a real initiator does; the answer is still stateless on its side.
                msg = build_ike_sa_init(props, group, spi=spi, src=local, dst=(ip, port), pad_to=pad_to,
                                        fragmentation_supported=fragmentation_supported,
                                        cookie=result.answer.cookie)
                result = probe(ip, port, msg, timeout=timeout, sock=sock, patience=patience)
        except OSError as exc:
            result = ExchangeAttempt(port=port, sent=0, status="error", error=str(exc))
        finally:
            sock.close()
        if result.answered:
            break
    return result


def reachability_verdict(udp500: bool, udp4500: bool, fragmented500: bool,
                         fragmented4500: bool | None = None) -> tuple[str, list[str]]:
    """Verdict and all findings from which probes the gateway answered.

    Verdicts: ``none`` (everything answered), ``udp-500-blocked``,
    ``udp-4500-blocked``, ``ip-fragments-dropped``, ``no-response``.
    """
    u500 = udp500 or fragmented500
    findings: list[str] = []
    if not u500 and not udp4500:
        return "no-response", ["no-response"]
    if not u500:
        findings.append("udp-500-blocked")
    if not udp4500:
        findings.append("udp-4500-blocked")
    frag_ok = fragmented500 if u500 else fragmented4500
    if frag_ok is False:
        findings.append("ip-fragments-dropped")
    return (findings[0] if findings else "none"), (findings or ["none"])


_EXPLAIN = {
    "none": "The gateway answered IKE_SA_INIT on UDP 500, on UDP 4500 and when IP-fragmented.",
    "udp-500-blocked": "No answer on UDP 500 while UDP 4500 answers: UDP 500 is filtered.",
    "udp-4500-blocked": "UDP 500 answers but UDP 4500 does not: NAT-T (IKE_AUTH, ESP-in-UDP) "
                        "will fail.",
    "ip-fragments-dropped": "Small IKE_SA_INIT is answered, the same message IP-fragmented is "
                            "not: fragments are dropped on the way (client->gateway). Large "
                            "IKE_AUTH messages will be lost; enable IKEv2 fragmentation "
                            "(RFC 7383).",
    "no-response": "Nothing answered: the gateway is down, unreachable, or all IKE traffic "
                   "is filtered.",
}


def reachability(
    gateway: str,
    *,
    timeout: float = 1.0,
    port: int = IKE_PORT,
    natt_port: int = NATT_PORT,
    big_size: int = 3000,
    proposals=DEFAULT_REACH_PROPOSALS,
    tries: int = 1,
    delay: float = 0.0,
    trips=None,
) -> dict:
    """Differential reachability test that explains IKEv2 silence.

    Probes (all stateless IKE_SA_INIT with a decoy KE group):
    (a) small to UDP ``port``, (b) small to UDP ``natt_port`` (non-ESP marker),
    (c) padded to ``big_size`` bytes to UDP ``port`` (IP-fragmented on a 1500
    path) and, only when (a) and (c) are silent but (b) answers, (d) padded to
    UDP ``natt_port``.  An answer counts only when it comes from the gateway
    address itself and echoes the probe's SPI.  Takes at most about
    (3 or 4) x ``tries`` x ``timeout`` seconds.

    With ``trips`` (the giveup.RoundTrips of an IKEv2 attempt running at the
    same time), (a)-(c) go out at once, each answer is a round-trip sample, and
    a silent probe is given up on the attempt's rule instead of ``timeout``.

    Returns ``{"gateway", "verdict", "findings", "explanation", "probes",
    "elapsed_s"}`` with per-probe evidence (each probe's SPI, so that captures
    of the attempt can leave these SAs out).  Only the client->gateway
    direction of fragmentation is tested (answers are small).
    """
    t0 = time.monotonic()
    common = dict(timeout=timeout, tries=tries, trips=trips)
    first = {"udp500": (port, None), "udp4500": (natt_port, None), "fragmented500": (port, big_size)}
    probes: dict[str, ExchangeAttempt] = {}
    if trips is not None:
        # Threads started here inherit this thread's network namespace (craft_netns).
        with ThreadPoolExecutor(max_workers=len(first), thread_name_prefix="reachability") as pool:
            futures = {k: pool.submit(_send_init, gateway, p, proposals, pad_to=pad, **common)
                       for k, (p, pad) in first.items()}
            probes = {k: f.result() for k, f in futures.items()}
    else:
        for i, (k, (p, pad)) in enumerate(first.items()):
            if i:
                time.sleep(delay)
            probes[k] = _send_init(gateway, p, proposals, pad_to=pad, **common)
    frag4500 = None
    if not probes["udp500"].answered and not probes["fragmented500"].answered \
            and probes["udp4500"].answered:
        time.sleep(delay)
        probes["fragmented4500"] = _send_init(gateway, natt_port, proposals,
                                              pad_to=big_size, **common)
        frag4500 = probes["fragmented4500"].answered
    verdict, findings = reachability_verdict(
        probes["udp500"].answered, probes["udp4500"].answered,
        probes["fragmented500"].answered, frag4500,
    )
    return {
        "gateway": gateway,
        "verdict": verdict,
        "findings": findings,
        "explanation": _EXPLAIN[verdict],
        "probes": {k: v.as_dict() for k, v in probes.items()},
        "elapsed_s": round(time.monotonic() - t0, 3),
    }


def accepted_proposals(
    gateway: str,
    candidates: Iterable = DEFAULT_CANDIDATES,
    *,
    port: int = IKE_PORT,
    timeout: float = 1.0,
    tries: int = 1,
    delay: float = 0.05,
    ke_group=None,
) -> list[dict]:
    """Which candidate proposals the gateway accepts, one stateless probe each.

    Each candidate is offered alone with a decoy KE group (not in the
    candidate): INVALID_KE_PAYLOAD means accepted (``requested_group`` is the
    DH group the gateway wants for it), NO_PROPOSAL_CHOSEN means refused,
    silence gives ``accepted=None``.  Sequential, ``delay`` seconds apart.
    A ``ke_group`` inside the candidate would make an accepting gateway create
    a half-open SA; it is reported as ``state_created=True``.
    """
    results = []
    for i, cand in enumerate(candidates):
        if i:
            time.sleep(delay)
        prop = tf.parse_proposal(cand)
        group = decoy_group(prop) if ke_group is None else as_group(ke_group)
        res = _send_init(gateway, port, prop, timeout=timeout, tries=tries, ke_group=group)
        results.append(_acceptance(prop, group, res))
    return results


def _judged(prop: tf.Proposal, ans: IkeAnswer | None) -> tuple[bool | None, str | None]:
    """(accepted, note) for one candidate from the gateway's answer."""
    if ans is None:
        return None, None
    if ans.kind == "invalid-ke":
        if ans.requested_group not in prop.dh_groups:
            return True, (f"gateway requested group {ans.requested_group}, "
                          "which the proposal does not contain")
        return True, None
    if ans.kind == "sa-init-accepted":
        return True, "gateway accepted the KE group: a half-open IKE_SA was created"
    if ans.kind == "no-proposal-chosen":
        return False, None
    return None, f"unexpected answer: {ans.notify_names or ans.kind}"


def _acceptance(prop: tf.Proposal, group: int, res: ExchangeAttempt) -> dict:
    """One row of :func:`accepted_proposals`."""
    try:
        windows = prop.windows()
    except ValueError:
        windows = None
    ans = res.answer
    accepted, note = _judged(prop, ans)
    return {
        "proposal": prop.strongswan(),
        "windows": windows,
        "accepted": accepted,
        "kind": ans.kind if ans else None,
        "requested_group": ans.requested_group if ans else None,
        "requested_group_name": ans.requested_group_name if ans else None,
        "ke_group_sent": group,
        "state_created": bool(ans and ans.kind == "sa-init-accepted"),
        "status": res.status,
        "rtt_ms": round(res.rtt * 1000, 2) if res.rtt is not None else None,
        "note": note,
    }


def preferred_group(
    gateway: str,
    candidates: Iterable = DEFAULT_CANDIDATES,
    *,
    port: int = IKE_PORT,
    timeout: float = 1.0,
    tries: int = 1,
) -> dict:
    """The gateway's preferred DH group among ``candidates``, from one INVALID_KE.

    All candidates go into one SA payload (in the given order) with a decoy KE
    group; the gateway picks by its own preference and names the group in
    INVALID_KE_PAYLOAD.  Returns ``{"group", "group_name", "kind", "matching"}``
    where ``matching`` lists the candidates containing that group.
    """
    props = [tf.parse_proposal(c) for c in candidates]
    res = _send_init(gateway, port, props, timeout=timeout, tries=tries)
    ans = res.answer
    group = ans.requested_group if ans and ans.kind == "invalid-ke" else None
    return {
        "group": group,
        "group_name": tf.dh_group_name(group),
        "kind": ans.kind if ans else None,
        "status": res.status,
        "matching": [p.strongswan() for p in props if group in p.dh_groups],
        "rtt_ms": round(res.rtt * 1000, 2) if res.rtt is not None else None,
    }
