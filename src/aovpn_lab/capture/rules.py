"""The rules that name a cause, exchange by exchange (the decision in :mod:`aovpn_lab.capture.diagnose`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import ikewire
from .exchanges import AUTH, I2R, INFORMATIONAL, INTERMEDIATE, R2I, SA_INIT, Exchange, Message, SaView
from .ikewire import IkeRecord, exchange_name, notify_name
from .side import CaptureSide

__all__ = ["ABANDON_WINDOW", "ERROR_SIZED_MAX", "CaptureFinding", "esp_after", "judge"]

#: an IKE_AUTH response of at most this many bytes carries an error notify, not a result
ERROR_SIZED_MAX = 128
#: an INFORMATIONAL from the initiator this soon after IKE_AUTH abandons the SA
ABANDON_WINDOW = 2.0
N_NO_PROPOSAL, N_INVALID_KE, N_AUTH_FAILED, N_COOKIE = 14, 17, 24, 16390
_CRITICAL = (SA_INIT, INTERMEDIATE, AUTH)


@dataclass
class CaptureFinding:
    """What the rules conclude about one IKE SA: the cause and the reason."""

    established: bool = False
    cause: str = "no-response"
    direction: str | None = None
    reason: str = ""
    lost: Message | None = None
    port: int | None = None
    alternatives: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    auth: str | None = None      # responder-refused | initiator-abandoned


def _port_works(sa_views: list[SaView], direction: str, port: int | None, exclude: Message) -> bool:
    """Did any other IKE message sent in this direction arrive whole on this responder port?"""
    for sa in sa_views:
        for m in sa.messages:
            if m is exclude or m.direction != direction or m.port != port:
                continue
            if any(r.dgram.complete for r in m.seen.records):
                return True
    return False


def _loss(m: Message, all_sas: list[SaView]) -> CaptureFinding:
    port = m.port
    blocked = f"udp-{port}-blocked" if port in (500, 4500) else "no-response"
    what = f"{exchange_name(m.exchange)} {'response' if m.response else 'request'} #{m.msg_id}"
    sent, seen = m.sent.metrics(), m.seen.metrics()
    v = CaptureFinding(cause=blocked, direction=m.direction, lost=m, port=port)
    works = _port_works(all_sas, m.direction, port, m)
    if m.sent.skf_total:
        n = m.sent.skf_total
        if sent["ip_fragments"] and seen["ip_fragments"] < sent["ip_fragments"]:
            v.cause = "ip-fragments-dropped"
            v.reason = (f"{what} was split into {n} RFC 7383 fragments, but they were still larger than the "
                        f"MTU and got IP-fragmented ({sent['ip_fragments']} IP fragments sent, "
                        f"{seen['ip_fragments']} arrived)")
        elif m.seen.records or works:
            v.cause = "ike-fragments-dropped"
            v.reason = (f"{what} was sent as {n} RFC 7383 fragments (largest IP packet "
                        f"{sent['largest_ip_packet']} B); {seen.get('ike_fragments_complete', 0)} of them arrived"
                        + ("" if m.seen.records else f", although other packets to UDP {port} do"))
        else:
            v.reason = (f"{what} was sent as {n} RFC 7383 fragments and none arrived; nothing else sent to UDP "
                        f"{port} arrived either")
            v.alternatives = ["ike-fragments-dropped"]
    elif m.ip_fragmented:
        v.cause = "ip-fragments-dropped"
        got = seen["ip_fragments"]
        v.reason = (f"{what} ({m.size} B) was IP-fragmented into {sent['packets'] // max(1, sent['transmissions'])} "
                    f"packets (largest {sent['largest_ip_packet']} B), sent {sent['transmissions']} time(s): "
                    f"{sent['ip_fragments']} fragments sent, {got} arrived")
        if not got and not works:
            v.alternatives = [blocked] if blocked != "no-response" else []
            v.reason += f"; nothing else sent this way ever arrived on UDP {port} either"
            if _port_works(all_sas, I2R if m.direction == R2I else R2I, port, m):
                way = "client to server" if m.direction == R2I else "server to client"
                v.reason += f" (UDP {port} works from {way}, so only a one-way block would look the same)"
            else:
                v.reason += ", so a blocked port would look the same"
        elif got and not m.seen.records and not works and blocked != "no-response":
            # Only non-first fragments arrived: the first fragment alone carries the UDP header,
            # and a filter on the port (which sees it there only) drops exactly that one.
            v.alternatives = [blocked]
            v.reason += (f"; none of the first fragments (the only ones carrying the UDP header) arrived and "
                         f"nothing else sent this way reached UDP {port}, so a filter on that port, which sees the "
                         "port in the first fragment alone, would look the same")
    else:
        v.reason = (f"{what} ({m.size} B, not fragmented) was sent {sent['transmissions']} time(s) to UDP "
                    f"{port} and never arrived")
        if works:
            v.notes.append(f"other packets to UDP {port} did arrive: loss is selective (stateful filter, "
                           "rate limit, or an unstable path)")
    return v


def esp_after(side: CaptureSide, sa_recs: list[IkeRecord], after: float | None) -> dict[str, int]:
    """ESP packets on this SA's addresses/ports in one capture, after ``after``."""
    out = {I2R: 0, R2I: 0}
    flows: dict[tuple, str] = {}
    for r in sa_recs:
        d = r.dgram
        a, b = (d.src, d.sport), (d.dst, d.dport)
        ini, res = (a, b) if r.from_initiator else (b, a)
        flows[(ini, res)] = I2R
        flows[(res, ini)] = R2I
        flows[(ini[0], res[0])] = I2R
        flows[(res[0], ini[0])] = R2I
    if after is None:
        return out
    for e in side.esp:
        d = e.dgram
        if d.ts < after:
            continue
        key = ((d.src, d.sport), (d.dst, d.dport)) if e.udp else (d.src, d.dst)
        if key in flows:
            out[flows[key]] += 1
    return out


_NEXT_ROUND = object()  # this round failed, but the initiator tried again: judge the next one


def judge(sa: SaView, all_sas: list[SaView], client: CaptureSide, server: CaptureSide) -> CaptureFinding:
    """The cause for one IKE SA: the first exchange that failed, else how IKE_AUTH ended."""
    last_auth: Exchange | None = None
    init_ok = False
    for i, ex in enumerate(sa.exchanges):
        if ex.exchange not in _CRITICAL or not ex.by_initiator:
            continue
        if ex.exchange == AUTH and not init_ok and not any(e.exchange == SA_INIT for e in sa.exchanges):
            init_ok = True  # the capture started after IKE_SA_INIT
        later_round = any(e.exchange == ex.exchange and e.msg_id == ex.msg_id and e.by_initiator
                          for e in sa.exchanges[i + 1:])
        found = _exchange_failure(ex, all_sas, later_round)
        if found is _NEXT_ROUND:
            continue
        if found is not None:
            return found  # type: ignore[return-value]
        if ex.exchange == SA_INIT:
            init_ok = True
        elif ex.exchange == AUTH:
            last_auth = ex
    if not init_ok:
        return CaptureFinding(cause="no-response", reason="no IKE_SA_INIT exchange of this SA is in the captures")
    if last_auth is None:
        return CaptureFinding(cause="no-response", reason="IKE_SA_INIT completed but the initiator never sent "
                                                          "IKE_AUTH (it gave up, or the client capture stopped "
                                                          "too early)")
    return _auth_outcome(sa, last_auth, client, server)


def _exchange_failure(ex: Exchange, all_sas: list[SaView], later_round: bool):
    """A finding when this exchange failed, :data:`_NEXT_ROUND`, or None (it went through)."""
    q, r = ex.request, ex.response
    if not q.was_sent and not q.delivered:
        return _NEXT_ROUND  # neither capture has it whole: nothing to judge
    if not q.delivered:
        return _NEXT_ROUND if later_round else _loss(q, all_sas)
    if not r.was_sent:
        return _NEXT_ROUND if later_round else CaptureFinding(cause="no-response", reason=(
            f"the responder received {ex.name} request #{ex.msg_id} ({q.size} B, {q.seen.complete_copies} "
            f"complete copies) and never answered"))
    if not r.delivered:
        return _NEXT_ROUND if later_round else _loss(r, all_sas)
    if ex.exchange == SA_INIT:
        return _sa_init_refusal(r.notifies, later_round)
    return None


def _sa_init_refusal(notes: list[int], later_round: bool):
    """What the notifies of an IKE_SA_INIT answer say (None: accepted)."""
    if N_NO_PROPOSAL in notes:
        return CaptureFinding(cause="no-proposal-chosen", reason=(
            "the responder answered IKE_SA_INIT with NO_PROPOSAL_CHOSEN: client and server share no IKE "
            "proposal (Windows error 13868)"))
    if N_INVALID_KE in notes or N_COOKIE in notes:
        if later_round:
            return _NEXT_ROUND
        if N_INVALID_KE in notes:
            return CaptureFinding(cause="no-proposal-chosen", reason=(
                "the responder answered IKE_SA_INIT with INVALID_KE_PAYLOAD and the initiator did not "
                "retry with the requested DH group"))
        return CaptureFinding(cause="no-response", reason="the responder asked for a COOKIE and the initiator "
                                                          "did not retry")
    errors = [n for n in notes if n <= ikewire.ERROR_NOTIFY_MAX]
    if errors:
        cause = "auth-failed" if N_AUTH_FAILED in errors else "no-response"
        return CaptureFinding(cause=cause, reason="the responder answered IKE_SA_INIT with "
                                                  + ", ".join(notify_name(n) for n in errors))
    return None


def _auth_outcome(sa: SaView, last_auth: Exchange, client: CaptureSide, server: CaptureSide) -> CaptureFinding:
    """IKE_AUTH is encrypted: judged by ESP after it, the answer's size, and what the initiator did next."""
    resp = last_auth.response
    t_resp = resp.client.first_ts
    esp_c = esp_after(client, sa.client, t_resp)
    esp_s = esp_after(server, sa.server, resp.server.first_ts)
    if sum(esp_c.values()) + sum(esp_s.values()):
        return CaptureFinding(established=True, cause="none", reason=(
            f"IKE_AUTH completed and ESP flowed on the child SA ({esp_c[I2R]}/{esp_c[R2I]} packets out/in at the "
            "client)"))
    size = resp.size
    if resp.encrypted and size <= ERROR_SIZED_MAX:
        return CaptureFinding(cause="auth-failed", auth="responder-refused", reason=(
            f"the responder answered IKE_AUTH #{last_auth.msg_id} with only {size} B (an error notify such as "
            "AUTHENTICATION_FAILED, not IDr/AUTH/SA/TS) and the initiator did not continue"))
    # did the initiator abandon the SA right away?
    for ex in sa.exchanges:
        if ex.exchange != INFORMATIONAL or not ex.by_initiator or ex.msg_id <= last_auth.msg_id \
                or t_resp is None:
            continue
        t = ex.request.client.first_ts
        if t is not None and 0 <= t - t_resp <= ABANDON_WINDOW:
            return CaptureFinding(cause="auth-failed", auth="initiator-abandoned", reason=(
                f"the responder's IKE_AUTH answer ({size} B) arrived, and {t - t_resp:.3f} s later the initiator "
                f"sent an INFORMATIONAL ({ex.request.size} B) and no traffic followed: the client refused the "
                "server's authentication (its certificate or identity)"))
    return CaptureFinding(established=True, cause="none", reason=(
        f"IKE_AUTH completed: the responder's answer to IKE_AUTH #{last_auth.msg_id} ({size} B) arrived"))
