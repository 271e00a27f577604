"""Capture IKE/ESP traffic with tcpdump, in a network namespace, for exactly one block.

    with capture_both(client=("aovpn-client", "eth0"), server=("aovpn-gw1", "eth0"),
                      directory=cell_dir) as pair:          # doctest: +SKIP
        run_the_failing_cell()
    diagnose(pair.client, pair.server)                      # doctest: +SKIP

:class:`Capture` starts ``ip netns exec NS tcpdump -i IF -w PATH -U -s 0 -n -Z root
--immediate-mode BPF`` and returns only once tcpdump has printed "listening on" (the
socket is open and filtering: packets sent after that are captured). ``--immediate-mode``
matters: with TPACKET_V3, packets wait in a ring block for up to a second and a stopped
tcpdump never writes them. On exit it waits a moment for packets in flight, stops tcpdump
by its PID (SIGTERM to the process group it leads, never by name), and waits until it
has exited, i.e. until the file is flushed and complete. tcpdump's own counts
("N packets captured / dropped by kernel") are kept on the object.
"""
from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from .errors import CaptureToolError

__all__ = ["DEFAULT_BPF", "Capture", "CapturePair", "capture_both", "running"]

#: IKE (500, 4500: also ESP-in-UDP), every IP fragment (non-first fragments carry no
#: ports), native ESP.
DEFAULT_BPF = "udp port 500 or udp port 4500 or ip[6:2] & 0x3fff != 0 or esp"

_STATS = {
    "captured": re.compile(r"(\d+) packets? captured"),
    "received_by_filter": re.compile(r"(\d+) packets? received by filter"),
    "dropped_by_kernel": re.compile(r"(\d+) packets? dropped by kernel"),
}


class Capture:
    """tcpdump writing ``path`` while the ``with`` block runs.

    netns: network namespace name (None: the current one). interface: e.g. ``eth0``
    (``any`` works too, but then a packet routed through the host is seen twice).
    snaplen 0 keeps whole packets. settle: seconds to wait before stopping, so that
    packets still queued in the capture socket are written.
    """

    def __init__(self, netns: str | None, interface: str, path: str | os.PathLike,
                 bpf: str = DEFAULT_BPF, *, snaplen: int = 0, startup_timeout: float = 5.0,
                 settle: float = 0.2, tcpdump: str = "tcpdump"):
        self.netns = netns
        self.interface = interface
        self.path = Path(path)
        self.bpf = bpf
        self.snaplen = snaplen
        self.startup_timeout = startup_timeout
        self.settle = settle
        self.tcpdump = tcpdump
        self.proc: subprocess.Popen | None = None
        self.stderr_text = ""
        self.stats: dict[str, int] = {}
        self.started_at: float | None = None

    @property
    def where(self) -> str:
        return f"{self.interface} in namespace {self.netns}" if self.netns else self.interface

    def argv(self) -> list[str]:
        cmd = [self.tcpdump, "-i", self.interface, "-w", str(self.path), "-U", "-s", str(self.snaplen),
               "-n", "-Z", "root", "--immediate-mode"]
        if self.bpf:
            cmd.append(self.bpf)
        return (["ip", "netns", "exec", self.netns] + cmd) if self.netns else cmd

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> Self:
        if self.proc is not None:
            raise CaptureToolError(f"capture on {self.where} is already running")
        if shutil.which(self.tcpdump) is None and not os.path.exists(self.tcpdump):
            raise CaptureToolError(f"{self.tcpdump} is not installed", hint="apt-get install tcpdump")
        if self.netns and not os.path.exists(f"/run/netns/{self.netns}"):
            raise CaptureToolError(f"network namespace {self.netns!r} does not exist",
                                   hint="`ip netns list` shows the namespaces")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise CaptureToolError(f"cannot start tcpdump on {self.where}: {exc}") from None
        deadline = time.monotonic() + self.startup_timeout
        buf = b""
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        # Readiness, not success: tcpdump announces on stderr that its capture is open
        # ("listening on IFACE, link-type ..."); whether it failed is its exit (below).
        while b"listening on" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill()
                raise CaptureToolError(f"tcpdump on {self.where} did not start listening within "
                                       f"{self.startup_timeout:g} s: {buf.decode(errors='replace').strip()}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:  # tcpdump exited
                self.proc.wait(timeout=5)
                text = buf.decode(errors="replace").strip()
                self.proc = None
                raise CaptureToolError(f"tcpdump on {self.where} exited at start-up: "
                                       f"{text.splitlines()[-1] if text else 'no output'}",
                                       hint="check the interface name and the filter expression")
            buf += chunk
        self.stderr_text = buf.decode(errors="replace")
        self.started_at = time.time()
        return self

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)

    def terminate(self) -> None:
        """Ask tcpdump to finish (SIGTERM: it writes what it holds and its counts)."""
        if self.proc is not None and self.proc.poll() is None:
            # `ip netns exec` execs tcpdump, so the PID (and its process group) is tcpdump's
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 5.0) -> dict[str, int]:
        """Stop tcpdump (by PID), wait for it to exit, return its packet counts."""
        proc = self.proc
        if proc is None:
            return self.stats
        if self.settle > 0 and proc.poll() is None:
            time.sleep(self.settle)
        self.terminate()
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            _, err = proc.communicate()
        self.stderr_text += (err or b"").decode(errors="replace")
        for key, rx in _STATS.items():
            m = rx.search(self.stderr_text)
            if m:
                self.stats[key] = int(m.group(1))
        self.proc = None
        if not self.path.exists() or self.path.stat().st_size < 24:
            raise CaptureToolError(f"tcpdump on {self.where} left no complete capture file at {self.path}: "
                                   f"{self.stderr_text.strip().splitlines()[-1:] or 'no output'}")
        return self.stats

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class CapturePair:
    client: Path
    server: Path
    client_capture: Capture
    server_capture: Capture


@contextlib.contextmanager
def running(captures: Sequence[Capture]) -> Iterator[list[Capture]]:
    """Run several captures over one block: all are listening when it starts, and when it
    ends (also when it raises) they settle once, together, and are stopped together - a
    settle each, one after another, would add up for every point a cell captures at."""
    started: list[Capture] = []
    try:
        for cap in captures:
            started.append(cap.start())
    except BaseException:
        for cap in started:
            cap.settle = 0
            cap.stop()
        raise
    failed = True
    try:
        yield started
        failed = False
    finally:
        settle = max((c.settle for c in started), default=0)
        if settle > 0:
            time.sleep(settle)  # once for all
        for cap in started:
            cap.settle = 0
            cap.terminate()  # every tcpdump told first, so they exit at the same time
        errors = []
        for cap in started:
            try:
                cap.stop()
            except CaptureToolError as exc:
                errors.append(exc)
        if errors and not failed:
            raise errors[0]


@contextlib.contextmanager
def capture_both(client: tuple[str | None, str], server: tuple[str | None, str],
                 directory: str | os.PathLike, *, bpf: str = DEFAULT_BPF, prefix: str = "",
                 **kwargs) -> Iterator[CapturePair]:
    """Capture on the client's and the server's interface at once.

    Yields a :class:`CapturePair` with the paths ``DIR/[prefix]client.pcap`` and
    ``DIR/[prefix]server.pcap``; both captures are running when the block starts and
    complete when it ends (also when it raises).
    """
    d = Path(directory)
    c = Capture(client[0], client[1], d / f"{prefix}client.pcap", bpf, **kwargs)
    s = Capture(server[0], server[1], d / f"{prefix}server.pcap", bpf, **kwargs)
    with running([c, s]):
        yield CapturePair(c.path, s.path, c, s)
