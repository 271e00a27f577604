"""Why an IKEv2 connection failed, from two captures taken at the same time.

    >>> d = diagnose("client.pcap", "server.pcap")                    # doctest: +SKIP
    >>> d.established, d.cause, d.direction, d.uses_ip_fragmentation  # doctest: +SKIP
    (False, 'ip-fragments-dropped', 'initiator-to-responder', True)
    >>> print(d.summary())                                            # doctest: +SKIP

This is the diagnosis of Hicks' "Always On VPN IKEv2 Features and Limitations"
(docs/domain.md, "Why deployments break") done by a program: capture on the client and
on the server at the same time, then compare what one end sent with what the other end
saw.

How the captures are matched
    Only by IKE SPIs, never by addresses or ports (there may be NAT between the two
    capture points): an IKE SA is the initiator SPI; messages are (exchange, message ID,
    request/response); responder SPIs are reported. Unencrypted messages sent again with
    different content (IKE_SA_INIT after COOKIE or INVALID_KE) are told apart by content;
    identical copies are retransmissions. IP fragments are reassembled here (the
    capture's own sizes are kept: packets, fragments, bytes, the largest IP packet);
    fragments whose first fragment never arrived are matched to the sender's datagrams
    by IP identification. RFC 7383 fragments (SKF payload) are counted by fragment
    number/total. The client capture is taken to be the IKE initiator's (the Always On
    VPN client always initiates); direction comes from the IKE header's Initiator flag.

Which IKE SA is diagnosed
    The last SA the client started that was established, else the last SA it started.
    The others are listed in ``evidence.other_sas`` with their own cause.

The decision, exchange by exchange (IKE_SA_INIT rounds, then IKE_AUTH by message ID)
    1. A request (initiator-to-responder) or response (responder-to-initiator) that the
       sender's capture shows and of which no complete copy is in the other capture is
       *lost* in that direction:

       - an RFC 7383 fragmented message: ``ip-fragments-dropped`` if its SKF datagrams
         were themselves IP-fragmented and fragments are missing; otherwise
         ``ike-fragments-dropped`` when some of its fragments arrived or other
         datagrams to the same UDP port got through (the fragments are too big for the
         path, or filtered), else ``udp-<port>-blocked`` (with ``ike-fragments-dropped``
         as an alternative);
       - an IP-fragmented message: ``ip-fragments-dropped``. Certain when some of its
         fragments arrived or unfragmented datagrams to the same port got through. When
         nothing at all ever arrived on that port (typical: the large IKE_AUTH is the
         first packet to UDP 4500), the captures cannot tell "fragments dropped" from
         "port blocked": the cause is still ``ip-fragments-dropped`` and
         ``alternatives`` names ``udp-<port>-blocked``; so it does when only non-first
         fragments arrived (a filter on the port sees the port in the first fragment
         alone, and drops just that one);
       - an unfragmented message: ``udp-500-blocked`` / ``udp-4500-blocked`` by the
         responder's port (500 or 4500) of that message.
    2. A request the responder received completely and never answered: ``no-response``
       (direction null: nothing was lost on the path).
    3. An IKE_SA_INIT response carrying NO_PROPOSAL_CHOSEN (unencrypted):
       ``no-proposal-chosen``; INVALID_KE_PAYLOAD not followed by a new IKE_SA_INIT: the
       same (the DH group does not match).
    4. IKE_AUTH cannot be decrypted, so authentication is judged by size and by what
       follows:

       - the last IKE_AUTH response is *error-sized* (at most
         :data:`ERROR_SIZED_MAX` = 128 bytes of IKE message: header, SK header, IV, one
         notify, ICV; strongSwan's N(AUTHENTICATION_FAILED) is 80 bytes, a successful
         answer carries at least IDr/AUTH/SA/TS and is well above 200) and the initiator
         does not continue IKE_AUTH: ``auth-failed`` (the responder refused the client:
         untrusted certificate, wrong identity, EAP failure);
       - the initiator sends an INFORMATIONAL request within
         :data:`ABANDON_WINDOW` (2 s) of the last IKE_AUTH response and no ESP follows:
         ``auth-failed`` (the client refused the server: untrusted/expired certificate,
         name mismatch).
    5. Otherwise IKE_AUTH completed: ``established`` and cause ``none``. ESP traffic on
       the SA's address/port pair after the last IKE_AUTH response also counts as
       established (it overrides 4).

Result fields
    ``established``, ``cause`` (one of :data:`CAUSES`), ``direction`` (where the loss
    was seen, else None), ``uses_ip_fragmentation`` (some IKE message of the SA was
    IP-fragmented in either capture, delivered or not: an established SA with this set
    breaks behind any fragment-dropping firewall), ``uses_ike_fragmentation`` (RFC 7383
    SKF payloads seen), ``reason``, ``alternatives`` (causes the captures cannot rule
    out), ``advice``, ``auth_failure`` (``responder-refused`` / ``initiator-abandoned``),
    and ``evidence``: per message and direction what the sender's capture shows vs the
    other one (messages, transmissions/retransmits, datagrams, packets, IP fragments,
    bytes, largest IP packet, IKE size, RFC 7383 fragments), the IKE_SA_INIT/IKE_AUTH
    sizes (for RFC 7383 messages: the sum of the fragments' IKE lengths), endpoints as
    seen in each capture (NAT), ESP counts, RFC 7383 advertisement, other SAs.

Limits (honest ones)
    - Sizes are heuristics: an implementation that adds several notifies to an error
      answer can exceed 128 bytes (then 4 misses it); a response that is a successful
      but tiny EAP message that ends the exchange would be taken as a failure. A client
      that disconnects within 2 s of connecting, without sending any traffic, looks like
      the client refused the server. A child SA that failed inside a successful
      IKE_AUTH (TS_UNACCEPTABLE, NO_PROPOSAL_CHOSEN for ESP) is encrypted and is reported
      as established.
    - A message lost with nothing else ever reaching that port is ambiguous (see 1).
    - Captures must be complete: a capture started late, stopped early, or with kernel
      drops reads as loss. Capture on one interface (``-i any`` on a router sees each
      packet twice). Only IKEv2 on UDP 500/4500 (plus native ESP) is recognised.
"""
from __future__ import annotations

import os
from typing import Any

from ..ike.probe import CAUSES
from .diagnosis import ADVICE, Diagnosis, rfc7383_note, rfc7383_support
from .errors import CaptureInputError, CaptureMismatchError
from .exchanges import AUTH, DIRECTIONS, SA_INIT, SaView, build_exchanges
from .rules import ABANDON_WINDOW, ERROR_SIZED_MAX, CaptureFinding, esp_after, judge
from .side import CaptureSide, load_capture

__all__ = [
    "ABANDON_WINDOW",
    "CAUSES",
    "DIRECTIONS",
    "ERROR_SIZED_MAX",
    "CaptureFinding",
    "CaptureSide",
    "Diagnosis",
    "diagnose",
    "load_capture",
]

_CAPTURE_HINT = ("capture on the client and on the server at the same time, e.g. "
                 "`tcpdump -i IF -w FILE -s 0 'udp port 500 or udp port 4500 or ip[6:2] & 0x3fff != 0'`")


def _sa_summary(sa: SaView, v: CaptureFinding) -> dict[str, Any]:
    return {"initiator_spi": sa.spi_i.hex(), "responder_spi": sa.spi_r.hex(), "established": v.established,
            "cause": v.cause, "direction": v.direction, "in_client_capture": bool(sa.client),
            "in_server_capture": bool(sa.server)}


def diagnose(client_pcap: str | os.PathLike, server_pcap: str | os.PathLike,
             leave_out: set[bytes] | frozenset[bytes] = frozenset()) -> Diagnosis:
    """Compare a client capture and a server capture of the same IKEv2 attempt(s).

    Raises :class:`~aovpn_lab.capture.errors.CaptureInputError` for an unreadable, non-
    pcap/pcapng, truncated or empty (0-byte) file, or a client capture without IKE, and
    :class:`~aovpn_lab.capture.errors.CaptureMismatchError` when the client received IKE
    answers for SAs of which the server capture holds none (wrong server, wrong time,
    load balancer). A server capture with no packets, or only other clients' SAs, is
    valid when the client never got an answer: that is what a blocked path looks like.
    See the module docstring for the rules. `leave_out`: initiator SPIs of IKE SAs that
    are not the attempt's (the differential test's, sent at the same time).
    """
    client = load_capture(client_pcap, "client").without(leave_out)
    server = load_capture(server_pcap, "server").without(leave_out)
    common = _check_pairing(client, server)
    orphans = {"client": client.orphans, "server": server.orphans}
    views = [SaView(spi, client.by_sa.get(spi, []), server.by_sa.get(spi, [])) for spi in client.by_sa]
    for view in views:
        view.exchanges = build_exchanges(view.client, view.server, orphans)
    views.sort(key=lambda s: s.start)
    findings = [judge(sa, views, client, server) for sa in views]
    started = [i for i, sa in enumerate(views)
               if any(r.exchange in (SA_INIT, AUTH) and not r.is_response for r in sa.client)] or \
        list(range(len(views)))
    est = [i for i in started if findings[i].established]
    pick = est[-1] if est else started[-1]
    sa, v = views[pick], findings[pick]

    notes = list(v.notes)
    if not common:
        notes.append(f"none of the client's IKE SAs appears in {server.path}"
                     + ("" if server.ike else " (it holds no IKE traffic at all)"))
    if server.stats.get("duplicates") or client.stats.get("duplicates"):
        notes.append("some IP fragments were captured twice (capture on one interface, not 'any')")
    esp = {"client": esp_after(client, sa.client, min((r.dgram.ts for r in sa.client), default=None)),
           "server": esp_after(server, sa.server, min((r.dgram.ts for r in sa.server), default=None))}
    uses_ipf = any(m.ip_fragmented for m in sa.messages)
    sup = rfc7383_support(sa)
    if uses_ipf or v.cause in ("ip-fragments-dropped", "ike-fragments-dropped"):
        note = rfc7383_note(sup)
        if note:
            notes.append(note)
    others = [_sa_summary(s, findings[i]) for i, s in enumerate(views) if i != pick]
    return Diagnosis(
        established=v.established, cause=v.cause, direction=v.direction, uses_ip_fragmentation=uses_ipf,
        uses_ike_fragmentation=any(m.sent.skf_total or m.seen.skf_total for m in sa.messages), reason=v.reason,
        advice=_advice(v, uses_ipf), alternatives=v.alternatives, client=client, server=server, sa=sa,
        nat=_nat(sa), notes=notes, other_sas=others, esp=esp, port=v.port, rfc7383=sup, auth_failure=v.auth)


def _check_pairing(client: CaptureSide, server: CaptureSide) -> list[bytes]:
    """The SAs both captures hold; raise when the two captures cannot be of one attempt."""
    if not client.ike:
        raise CaptureInputError(client.path, f"holds no IKEv2 traffic (UDP 500/4500) in {client.info.frames} "
                                             "packets", _CAPTURE_HINT)
    common = [spi for spi in client.by_sa if spi in server.by_sa]
    answered = [spi for spi, recs in client.by_sa.items() if any(r.is_response for r in recs)]
    if not common and answered:
        what = "holds no IKEv2 traffic" if not server.ike else \
            f"shares no IKE SA with the client capture ({len(server.by_sa)} other SAs in it)"
        raise CaptureMismatchError(
            f"{server.path} {what}, yet the client ({client.path}) got answers for IKE SA(s) "
            f"{', '.join(s.hex() for s in answered[:3])}",
            hint="take both captures at the same time, on the server that actually answered (behind a load "
                 "balancer: every node, and UDP 500/4500 must reach the same one)")
    return common


def _nat(sa: SaView) -> bool | None:
    """Is there NAT between the captures (the initiator's address differs)? None: cannot tell."""
    c_ep = next(((r.dgram.src, r.dgram.sport) for r in sa.client if r.from_initiator), None)
    s_ep = next(((r.dgram.src, r.dgram.sport) for r in sa.server if r.from_initiator), None)
    return c_ep[0] != s_ep[0] if c_ep and s_ep else None


def _advice(v: CaptureFinding, uses_ipf: bool) -> list[str]:
    if not v.established:
        advice = list(ADVICE.get(f"{v.cause}:{v.auth}", ADVICE.get(v.cause, [])))
        for alt in v.alternatives:
            advice += [a for a in ADVICE.get(alt, []) if a not in advice]
        return advice
    if uses_ipf:
        at_risk = ("It works here, but IKE relies on IP fragmentation: any firewall or NAT that drops "
                   "fragments (hotel, guest and mobile networks often do) will break it (Windows error 809).")
        return [at_risk, *ADVICE["ip-fragments-dropped"][:1], *ADVICE["ip-fragments-dropped"][2:]]
    return []
