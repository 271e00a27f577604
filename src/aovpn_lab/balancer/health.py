"""The two health checks a balancer can run against an IKE gateway, each one datagram out.

``ike``: a stateless IKE_SA_INIT (:func:`aovpn_lab.ike.craft.build_ike_sa_init`) whose KE
payload carries a decoy group outside every offered proposal. A gateway whose IKE daemon
works must answer it: INVALID_KE_PAYLOAD when it accepts a proposal (it wants another
group), NO_PROPOSAL_CHOSEN when it accepts none, COOKIE when it is under load. None of
these creates an IKE SA, so a check every second never fills a strongSwan responder's
half-open table (nor gets the balancer's address blocked after ``block_threshold`` of
them). The gateway is up only when an IKE_SA_INIT response echoing our SPI comes back
within the timeout (AOVPN-LB-HEALTH-001).

``udp-port``: what a plain UDP monitor does (F5's ``udp`` monitor; HAProxy has none, nginx
OSS only notices failed proxying): one datagram from a connected socket, and the backend
counts as down only when an ICMP port unreachable comes back (ECONNREFUSED). Silence is
"up": a gateway whose charon hangs, or whose port is filtered, stays in the pool. The
check exists to show exactly that difference.

Each returns a :class:`HealthResult` (up, reason, rtt_ms).

    >>> HealthResult(True, "INVALID_KE_PAYLOAD (wants group 14)", 0.42).to_json()
    {'up': True, 'reason': 'INVALID_KE_PAYLOAD (wants group 14)', 'rtt_ms': 0.42}
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..errors import AovpnError
from ..ike.numbers import IKE_PORT, IKE_SA_INIT, N_COOKIE
from ..ike.transport import resolve

__all__ = ["CHECKS", "KINDS", "UDP_PAYLOAD", "HealthResult", "checker", "ike_check", "udp_port_check"]

KINDS = ("ike", "udp-port")
#: what the udp-port check sends: any payload does, a gateway drops it as not IKE
UDP_PAYLOAD = b"aovpn-lab udp-port health check\n"


@dataclass(frozen=True)
class HealthResult:
    up: bool
    reason: str
    rtt_ms: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _ike_verdict(answer) -> tuple[bool, str]:
    """Is this answer (it echoes our SPI) a working IKE responder's? And what it said."""
    if answer.error:
        return False, f"answered with a malformed IKE message ({answer.error})"
    if not (answer.is_response and answer.exchange == IKE_SA_INIT):
        what = "request" if not answer.is_response else f"{answer.exchange_name} response"
        return False, f"answered with an IKE {what}, not an IKE_SA_INIT response"
    if answer.kind == "invalid-ke":
        return True, f"INVALID_KE_PAYLOAD (wants group {answer.requested_group_name or answer.requested_group})"
    if answer.kind == "no-proposal-chosen":
        return True, "NO_PROPOSAL_CHOSEN (IKE answers; it accepts none of the check's proposals)"
    if N_COOKIE in answer.notify_types:
        return True, "COOKIE (IKE answers; it is under load)"
    if answer.kind == "sa-init-accepted":
        # impossible with a decoy group outside the offer; said loudly if a responder does it
        return True, "IKE_SA_INIT accepted with the decoy group (the gateway keeps a half-open SA for it)"
    names = ", ".join(answer.notify_names) or "no notify"
    return True, f"IKE_SA_INIT response ({names})"


def ike_check(address: str, *, port: int = IKE_PORT, timeout: float = 0.5,
              proposals=None) -> HealthResult:
    """A stateless IKE_SA_INIT to ``address``:``port`` (``proposals``: the differential
    test's by default): up when an IKE answer with our SPI returns in time."""
    # scapy builds the message: imported here, so that a monitor of the udp-port kind
    # starts without it (about half a second)
    from ..ike.craft import DEFAULT_REACH_PROPOSALS, build_ike_sa_init, decoy_group, probe
    from ..ike.offer import as_proposals
    props = as_proposals(DEFAULT_REACH_PROPOSALS if proposals is None else proposals)
    message = build_ike_sa_init(props, decoy_group(props))
    attempt = probe(address, port, message, timeout=timeout)
    if attempt.answer is not None:
        up, reason = _ike_verdict(attempt.answer)
        return HealthResult(up, reason, _ms(attempt.rtt))
    if attempt.status == "refused":
        return HealthResult(False, f"ICMP port unreachable: nothing listens on UDP {port}", _ms(attempt.rtt))
    if attempt.status == "error":
        return HealthResult(False, f"cannot send the IKE_SA_INIT: {attempt.error}")
    reason = f"no IKE answer within {timeout:g} s"
    if attempt.ignored:
        reason += f" ({attempt.ignored} datagram(s) came back that were not an IKE answer to the check)"
    return HealthResult(False, reason)


def udp_port_check(address: str, *, port: int = IKE_PORT, timeout: float = 0.5,
                   payload: bytes = UDP_PAYLOAD) -> HealthResult:
    """One datagram from a connected socket: down only on ICMP port unreachable, up on silence or an answer."""
    family, ip = resolve(address)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    start = time.monotonic()
    try:
        sock.settimeout(max(0.0, timeout))
        sock.connect((ip, port))  # connected: the kernel hands ICMP errors for this peer to us
        sock.send(payload)
        sock.recv(65535)
        return HealthResult(True, f"UDP {port} answered", _ms(time.monotonic() - start))
    except ConnectionRefusedError:
        return HealthResult(False, f"ICMP port unreachable: nothing listens on UDP {port}",
                            _ms(time.monotonic() - start))
    except socket.timeout:
        return HealthResult(True, f"no ICMP port unreachable within {timeout:g} s (silence counts as up)")
    except OSError as exc:
        return HealthResult(False, f"cannot send to UDP {port}: {exc.strerror or exc}")
    finally:
        sock.close()


#: the checks by the name ``health_monitor.kind`` gives them in lb.yml
CHECKS: dict[str, Callable[..., HealthResult]] = {"ike": ike_check, "udp-port": udp_port_check}


def checker(kind: str, *, timeout: float = 0.5, port: int = IKE_PORT) -> Callable[[str], HealthResult]:
    """The check named ``kind`` (``ike`` or ``udp-port``, as ``health_monitor.kind`` in lb.yml), bound to its options."""
    if kind in CHECKS:
        return lambda address: CHECKS[kind](address, port=port, timeout=timeout)
    raise AovpnError(f"unknown health check '{kind}'",
                     hint=f"set load_balancer.health_monitor.kind to one of {', '.join(KINDS)}")
