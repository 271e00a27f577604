"""One IKE request and its answer over plain UDP (the non-ESP marker on port 4500).

The socket has DF off, so a request above the path MTU leaves IP-fragmented.  An
answer counts only when it comes from the address and port the request went to and
echoes the request's initiator SPI; anything else is ignored until the deadline.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # the reader (scapy) is imported when an answer is read: resolve() does without it
    from .answer import IkeAnswer
from .numbers import NATT_PORT, NON_ESP_MARKER

__all__ = ["ExchangeAttempt", "probe", "exchange", "resolve", "new_socket"]

PATIENCE_POLL = 0.02  # s: how often a changing deadline is looked at again


@dataclass
class ExchangeAttempt:
    """One request/answer attempt: what was sent and what (if anything) came back."""

    port: int
    sent: int  # IKE message bytes
    status: str  # answered | timeout | refused | error
    answer: IkeAnswer | None = None
    rtt: float | None = None
    local: tuple[str, int] | None = None
    error: str | None = None
    spi: bytes = b""  # the request's initiator SPI (captures of the attempt leave these SAs out)
    # Datagrams from the peer that were not an IKE answer to this request (garbage, ESP,
    # another SPI): a silent peer and one that answers nonsense are different failures.
    ignored: int = 0

    @property
    def answered(self) -> bool:
        return self.answer is not None

    def as_dict(self) -> dict:
        return {
            "port": self.port,
            "sent_bytes": self.sent,
            "status": self.status,
            "answered": self.answered,
            "kind": self.answer.kind if self.answer else None,
            "notify_types": list(self.answer.notify_types) if self.answer else [],
            "requested_group": self.answer.requested_group if self.answer else None,
            "answer_bytes": self.answer.size if self.answer else None,
            "rtt_ms": round(self.rtt * 1000, 2) if self.rtt is not None else None,
            "error": self.error,
            "spi": self.spi.hex() or None,
        }


def resolve(host: str) -> tuple[int, str]:
    """(address family, address) of a literal address or a host name."""
    try:
        ip = ipaddress.ip_address(host)
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), str(ip)
    except ValueError:
        info = socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)[0]
        return info[0], info[4][0]


def new_socket(family: int, src_port: int | None) -> socket.socket:
    """A UDP socket with DF off, bound to ``src_port`` when given."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # DF off: let the kernel IP-fragment datagrams above the path MTU
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10),
                            getattr(socket, "IP_PMTUDISC_DONT", 0))
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_MTU_DISCOVER", 23),
                            getattr(socket, "IPV6_PMTUDISC_DONT", 0))
    except OSError:
        pass
    if src_port is not None:
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", src_port))
    return sock


def _await_answer(sock, peer_addr: tuple[str, int], spi: bytes, use_marker: bool,
                  start: float, deadline: float, result: ExchangeAttempt | None = None,
                  patience: Callable[[float], float] | None = None) -> IkeAnswer | None:
    """The first datagram from ``peer_addr`` that is IKE and echoes ``spi``, or None.

    Datagrams from the peer passed over are counted in ``result.ignored``. ``patience``
    (send time -> deadline) replaces the fixed deadline and is asked again while waiting:
    it may shorten as other probes learn the path's round trip.
    """
    ip, dst_port = peer_addr
    for _ in range(10000):  # bounded: stray datagrams cannot keep us here
        remaining = (patience(start) if patience else deadline) - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(min(remaining, PATIENCE_POLL) if patience else remaining)
        try:
            data, peer = sock.recvfrom(65535)
        except socket.timeout:
            if patience:
                continue  # the deadline is asked again
            break
        arrived = time.monotonic()  # the round trip ends here, not after reading the answer
        if peer[0] != ip or peer[1] != dst_port:
            continue
        if use_marker:
            if data[:4] != NON_ESP_MARKER:
                if result is not None:
                    result.ignored += 1
                continue  # ESP, not IKE
            data = data[4:]
        if data[:8] != spi:
            if result is not None:
                result.ignored += 1
            continue
        from .answer import parse_ike_answer
        answer = parse_ike_answer(data)
        answer.rtt = arrived - start
        answer.peer = (peer[0], peer[1])
        return answer
    return None


def _attempt(sock, own: bool, ip: str, dst_port: int, message: bytes,
             use_marker: bool, timeout: float, patience: Callable[[float], float] | None = None) -> ExchangeAttempt:
    result = ExchangeAttempt(port=dst_port, sent=len(message), status="timeout", spi=bytes(message[:8]))
    wire = (NON_ESP_MARKER + message) if use_marker else bytes(message)
    start = time.monotonic()
    deadline = start + max(0.0, timeout)
    try:
        if own:
            sock.connect((ip, dst_port))  # ICMP port unreachable -> ECONNREFUSED
            sock.send(wire)
        else:
            sock.sendto(wire, (ip, dst_port))
        try:
            result.local = sock.getsockname()[:2]
        except OSError:
            pass
        answer = _await_answer(sock, (ip, dst_port), bytes(message[:8]), use_marker,
                               start, deadline, result, patience)
        if answer is not None:
            result.answer, result.rtt, result.status = answer, answer.rtt, "answered"
    except ConnectionRefusedError as exc:
        result.status, result.error = "refused", str(exc)
        result.rtt = time.monotonic() - start
    except OSError as exc:
        result.status, result.error = "error", str(exc)
    return result


def probe(
    dst_addr: str,
    dst_port: int,
    message: bytes,
    *,
    timeout: float = 1.0,
    src_port: int | None = None,
    sock=None,
    marker: bool | None = None,
    patience: Callable[[float], float] | None = None,
) -> ExchangeAttempt:
    """Send ``message`` once and wait up to ``timeout`` s for the matching answer.

    Only datagrams from ``dst_addr`` whose initiator SPI matches are taken;
    anything else is ignored until the deadline.  ``marker`` (default: port
    4500) prepends the 4-byte non-ESP marker and requires/strips it in answers.
    ``patience`` (send time -> deadline) replaces ``timeout`` (see _await_answer).
    """
    family, ip = resolve(dst_addr)
    use_marker = (dst_port == NATT_PORT) if marker is None else marker
    own = sock is None
    if own:
        sock = new_socket(family, src_port)
    try:
        return _attempt(sock, own, ip, dst_port, message, use_marker, timeout, patience)
    finally:
        if own:
            sock.close()


def exchange(dst_addr: str, dst_port: int, message: bytes, **options) -> IkeAnswer | None:
    """Send an IKE message over UDP and return the parsed answer, or None on silence.

    To port 4500 the non-ESP marker is prepended (and stripped from the
    answer).  The socket has DF off, so large messages are IP-fragmented by the
    kernel.  Waits at most ``timeout`` seconds.  ``options`` are :func:`probe`'s
    (``timeout``, ``src_port``, ``sock``, ``marker``).
    """
    return probe(dst_addr, dst_port, message, **options).answer
