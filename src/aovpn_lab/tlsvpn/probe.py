"""One openconnect (AnyConnect protocol) connection attempt, and why it failed when it did.

The TLS-VPN counterpart of :func:`aovpn_lab.sstp.probe.probe_sstp`: openconnect runs
(under ``ip netns exec`` when ``netns`` is given) with the password on stdin
(``--passwd-on-stdin``), ``--non-inter``, only ``ca_file`` trusted
(``--no-system-trust``), the server name mapped to the address with ``--resolve`` (so
SNI and the certificate name check use ``servername``), its own tun device and the
lab's minimal vpnc-script (:mod:`aovpn_lab.tlsvpn.script`: no DNS changes). When the
script reports the tunnel address, one ICMP echo goes through the tunnel, and
openconnect is stopped by its PID (SIGTERM: it sends BYE and runs the disconnect step;
SIGKILL after a grace period, short when no tunnel came up).

    >>> r = probe_openconnect("203.0.113.231", 4443, user="alice", password=secret,
    ...                       ca_file="ca.pem", servername="vpn.example.net",
    ...                       ping="198.19.3.1", netns="hxt-c")           # doctest: +SKIP
    >>> r.connected, r.cause, r.ip, r.ping_ok                           # doctest: +SKIP
    (True, 'none', '198.19.3.50', True)

Causes: ``none``, ``tcp-443-blocked`` (refused, unreachable, or no answer to the SYN
before the deadline — named after SSTP's port whatever ``port`` is), ``tls-failed``,
``cert-untrusted`` (chain or name), ``auth-failed``, ``timeout`` (connected at TCP
level but no tunnel before the deadline) and ``protocol-error`` (openconnect gave up
for another reason after TLS; the log says which). The password is never in argv,
the result, its log or its repr.
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..results import Phase, causes, probe_result
from .script import STATUS_ENV, write_script

OPENCONNECT = "openconnect"
CAUSES = causes.names("tlsvpn")  # profiles/causes.yml
STOP_GRACE = 3.0  # connected: time for BYE and the disconnect step
STOP_GRACE_UNCONNECTED = 0.5  # nothing to tear down (openconnect ignores SIGTERM mid-handshake)
PING_TRIES = 3

# What openconnect 9.x prints, mapped to causes (checked in this order).
_CERT = re.compile(r"Server certificate verify failed|failed verification|Error in the certificate|"
                   r"certificate does not match hostname", re.IGNORECASE)
_TCP = re.compile(r"Failed to connect to \S+?:\d+:\s*(.+)$|Failed to connect to host", re.IGNORECASE | re.MULTILINE)
_AUTH = re.compile(r"Login failed|Authentication failed|Invalid username or password|"
                   r"Failed to complete authentication|User input required in non-interactive mode",
                   re.IGNORECASE)
_TLS = re.compile(r"SSL connection failure|Failed to complete TLS handshake|"
                  r"TLS handshake failed|SSL negotiation .*failed|GnuTLS|handshake", re.IGNORECASE)


@dataclass
class OpenconnectResult(probe_result.ProbeResult):
    protocol = "tlsvpn"
    server: str
    port: int
    elapsed_ms: int
    servername: str | None = None
    user: str = ""
    netns: str | None = None
    url: str = ""
    tls: str = ""  # "(TLS1.3)-(ECDHE-SECP256R1)-(ECDSA-SECP256R1-SHA256)-(AES-256-GCM)"
    dtls: str = ""  # DTLS ciphersuite when the UDP channel came up
    server_pin: str = ""  # pin-sha256:... openconnect offers for an untrusted certificate
    cert_reason: str = ""
    interface: str = ""
    ip: str = ""
    mtu: int | None = None
    routes: list[str] = field(default_factory=list)
    tcp_ms: int | None = None
    tls_ms: int | None = None
    tunnel_ms: int | None = None  # until the script configured the address
    exit_code: int | None = None
    stopped: str = ""  # "SIGTERM" / "SIGKILL" / "exited"

    def title(self) -> str:
        return f"openconnect to {self.server}:{self.port}" + (f" (as {self.servername})" if self.servername else "")

    label_width = 10

    def summary_rows(self) -> list[tuple[str, Any]]:
        return [
            ("TLS", self.tls and self.tls + (f" at {self.tls_ms} ms" if self.tls_ms is not None else "")),
            ("DTLS", self.dtls),
            ("tunnel IP", self.ip and f"{self.ip} on {self.interface} (mtu {self.mtu}), routes "
             f"{' '.join(self.routes) or '-'}, after {self.tunnel_ms} ms"),
        ]

    def summary_lines(self) -> list[str]:
        return super().summary_lines() + self.ping_line()


def stages(r: OpenconnectResult) -> list[Phase]:
    """The phases from the moments openconnect's output and the vpnc-script marked: TCP up,
    TLS (and the HTTPS login) up, tunnel address configured, ping; the first one not
    reached failed, unless the attempt connected.

    >>> r = OpenconnectResult(False, "auth-failed", "203.0.113.231", 443, 900, tcp_ms=3, tls_ms=40)
    >>> [(p.name, p.start_ms, p.ms, p.ok) for p in stages(r)]
    [('tcp', 0, 3, True), ('tls', 3, 37, True), ('tunnel', 40, None, False)]
    """
    phases: list[Phase] = []
    start = 0
    for name, at in (("tcp", r.tcp_ms), ("tls", r.tls_ms), ("tunnel", r.tunnel_ms)):
        if at is None:
            if not r.connected:
                phases.append(Phase(name, start, None, False))
            break
        phases.append(Phase(name, start, at - start, True))
        start = at
    if r.ping and r.connected and r.ping_ok is not None:
        phases.append(Phase("ping", start, r.ping_ms, r.ping_ok))
    return phases


def classify(output: str, *, connected: bool, timed_out: bool) -> tuple[str, str]:
    """(cause, detail) from openconnect's output.

    >>> classify("Failed to connect to 203.0.113.231:443: Connection refused", connected=False, timed_out=False)
    ('tcp-443-blocked', 'Connection refused')
    >>> classify("Connected to HTTPS on x\\nLogin failed.", connected=False, timed_out=False)[0]
    'auth-failed'
    """
    if connected:
        return "none", ""
    if _CERT.search(output):
        reason = re.search(r"Reason:\s*(.+)$|Server certificate verify failed:\s*(.+)$", output, re.MULTILINE)
        return "cert-untrusted", (next(g for g in reason.groups() if g).strip() if reason
                                  else "server certificate not trusted")
    tcp = _TCP.search(output)
    if tcp and not re.search(r"^Connected to \S+:\d+", output, re.MULTILINE):
        return "tcp-443-blocked", (tcp.group(1) or "TCP connection failed").strip()
    tcp_up = re.search(r"^Connected to \S+:\d+", output, re.MULTILINE) is not None
    https_up = "Connected to HTTPS" in output
    if timed_out:
        if not tcp_up:
            return "tcp-443-blocked", "no answer to the TCP SYN before the deadline"
        return "timeout", ("no tunnel before the deadline" if https_up
                           else "TLS handshake did not finish before the deadline")
    if https_up and _AUTH.search(output):
        line = _AUTH.search(output).group(0)
        return "auth-failed", line
    if not https_up:
        if _TLS.search(output) or tcp_up:
            last = [l for l in output.splitlines() if l.strip()]
            return "tls-failed", (last[-1] if last else "TLS failed")
        return "tcp-443-blocked", "no TCP connection"
    last = [l for l in output.splitlines() if l.strip()]
    return "protocol-error", (last[-1] if last else "openconnect exited")


class _Reader(threading.Thread):
    """Collects openconnect's output lines with their arrival time."""

    def __init__(self, stream, began: float, secrets_: list[str]) -> None:
        super().__init__(daemon=True)
        self.stream, self.began, self.secrets = stream, began, secrets_
        self.lines: list[tuple[int, str]] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            for secret in self.secrets:
                if secret:
                    text = text.replace(secret, "***")
            with self.lock:
                self.lines.append((int((time.monotonic() - self.began) * 1000), text))

    def snapshot(self) -> list[tuple[int, str]]:
        with self.lock:
            return list(self.lines)


def _status(path: str) -> dict[str, str]:
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def _ns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def _ping(netns: str | None, target: str, interface: str, deadline: float) -> tuple[bool, int | None]:
    for _ in range(PING_TRIES):
        left = deadline - time.monotonic()
        if left <= 0.2:
            break
        began = time.monotonic()
        res = subprocess.run(_ns_prefix(netns) + ["ping", "-n", "-c", "1", "-W", str(max(1, min(2, int(left)))),
                                                  "-I", interface, target],
                             capture_output=True, text=True, timeout=left + 2, check=False)
        if res.returncode == 0:
            m = re.search(r"time=([\d.]+) ms", res.stdout)
            return True, int(float(m.group(1))) if m else int((time.monotonic() - began) * 1000)
    return False, None


def probe_openconnect(server: str, port: int = 443, *, user: str, password: str,
                      ca_file: str | None = None, servername: str | None = None,
                      ping: str | None = None, timeout: float = 15.0, netns: str | None = None,
                      dtls: bool = True, interface: str | None = None) -> OpenconnectResult:
    """Connect once, report, disconnect. ``netns``: run openconnect in that namespace.

    ``ca_file``: the only trusted CA(s) (None: the system store). ``servername``: the
    name dialled (SNI, certificate name); ``server`` is its address. ``timeout`` covers
    TCP up to the tunnel address (the ping gets at most 3 s more, the stop
    :data:`STOP_GRACE`).
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if "\n" in password or "\r" in password:
        raise ValueError("the password cannot contain line breaks (it goes to stdin)")
    name = servername or server
    host = f"[{name}]" if ":" in name else name
    url = f"https://{host}:{port}/"
    interface = interface or f"oc-{secrets.token_hex(3)}"
    result = OpenconnectResult(connected=False, cause="timeout", server=server, port=port,
                               elapsed_ms=0, servername=servername, user=user, netns=netns,
                               url=url, interface=interface, ping=ping)
    with tempfile.TemporaryDirectory(prefix="aovpn-oc-") as work:
        status_file = os.path.join(work, "status")
        argv = _ns_prefix(netns) + _openconnect_argv(result, str(write_script(work)), ca_file, dtls)
        env = dict(os.environ, **{STATUS_ENV: status_file})
        began = time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                    close_fds=True)
        except FileNotFoundError:
            result.cause, result.detail = "protocol-error", "openconnect is not installed"
            return result
        reader = _Reader(proc.stdout, began, [password])
        reader.start()
        try:
            timed_out = _run(proc, password, status_file, began, began + timeout, result)
        finally:
            result.exit_code, result.stopped = _stop(
                proc, STOP_GRACE if result.connected else STOP_GRACE_UNCONNECTED)
            reader.join(timeout=2)
            proc.stdout.close()
        result.elapsed_ms = int((time.monotonic() - began) * 1000)
    _read_output(reader.snapshot(), result, timed_out)
    return result


def _openconnect_argv(result: OpenconnectResult, script: str, ca_file: str | None, dtls: bool) -> list[str]:
    argv = [OPENCONNECT, "--protocol=anyconnect", "--non-inter", "--passwd-on-stdin",
            "--user", result.user, "--script", script, "--interface", result.interface]
    if ca_file:
        argv += ["--cafile", ca_file, "--no-system-trust"]
    if result.servername and result.servername != result.server:
        argv += ["--resolve", f"{result.servername}:{result.server}"]
    if not dtls:
        argv.append("--no-dtls")
    return argv + [result.url]


def _run(proc: subprocess.Popen, password: str, status_file: str, began: float, deadline: float,
         result: OpenconnectResult) -> bool:
    """Give openconnect the password, wait for the script to report the tunnel (or for
    openconnect to exit, or the deadline), then ping through it; True when timed out."""
    try:
        proc.stdin.write(password.encode() + b"\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass
    while True:
        st = _status(status_file)
        if st.get("reason") == "connect":
            result.connected = True
            result.tunnel_ms = int((time.monotonic() - began) * 1000)
            result.ip = st.get("ip", "")
            result.mtu = int(st["mtu"]) if st.get("mtu", "").isdigit() else None
            result.routes = st.get("routes", "").split()
            break
        if proc.poll() is not None:
            break
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.02)
    if result.connected and result.ping:
        result.ping_ok, result.ping_ms = _ping(result.netns, result.ping, result.interface,
                                               max(deadline, time.monotonic() + 3.0))
    return False


def _read_output(lines: list[tuple[int, str]], result: OpenconnectResult, timed_out: bool) -> None:
    """The log, the moments TCP and TLS came up, the ciphersuites and the cause."""
    result.log = [f"{ms:>6} ms  {text}" for ms, text in lines]
    output = "\n".join(text for _, text in lines)
    for ms, text in lines:
        if result.tcp_ms is None and re.match(r"^Connected to \S+:\d+", text):
            result.tcp_ms = ms
        m = re.search(r"Connected to HTTPS on .* with ciphersuite (\S+)", text)
        if m and result.tls_ms is None:
            result.tls_ms, result.tls = ms, m.group(1)
        m = re.search(r"Established DTLS connection.*Ciphersuite (\S+?)\.?$", text)
        if m:
            result.dtls = m.group(1)
        m = re.search(r"--servercert (pin-sha256:\S+)", text)
        if m:
            result.server_pin = m.group(1)
    result.cause, result.detail = classify(output, connected=result.connected, timed_out=timed_out)
    if result.cause == "cert-untrusted":
        result.cert_reason = result.detail
    result.phases = stages(result)


def _stop(proc: subprocess.Popen, grace: float) -> tuple[int | None, str]:
    """Stop openconnect by its PID: SIGTERM (BYE, disconnect script), then SIGKILL."""
    if proc.poll() is not None:
        return proc.returncode, "exited"
    how = "SIGTERM"
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        how = "SIGKILL"
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
    return proc.returncode, how
