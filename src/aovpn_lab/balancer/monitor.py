"""The balancer's health monitor: checks every backend each interval and keeps the live set.

A backend goes down after ``fall`` consecutive failed checks and comes back after ``rise``
consecutive good ones (the thresholds of ``load_balancer.health_monitor`` in lb.yml), so
one lost datagram does not take a gateway out and one answer does not put a flapping one
back. :func:`run` checks all backends of a round at once (one hung gateway does not delay
the others' checks), keeps the rounds ``interval`` apart, and calls ``on_change`` with the
live backends' names after the first round and whenever that set changes; an
``on_change`` that fails is called again the next round until it succeeds, so the
balancer's rules never stay behind the monitor.

As a command (run on the balancer):

    python -m aovpn_lab.balancer.monitor --check ike --backend gw1=198.18.1.10 \\
        --backend gw2=198.18.1.18 --interval 1 --timeout 0.5 --fall 2 --rise 2 \\
        --state /run/aovpn-lb [--on-change 'CMD ARGS'] [--switch BALANCER_DIR]

it writes DIR/live.json after every round (replaced whole, never half-written: the live
set, each backend's last result, and the round's number, so a reader can tell that the
monitor has judged a change for ``fall`` rounds and kept its verdict), one JSON line on
stdout per change, and runs CMD with the live names appended, judged by its exit status.
``--switch`` gives the live set to the lab balancer whose state folder that is
(aovpn_lab.balancer.switch) in this process: a command started per change would cost
about a quarter of a second of Python start, inside the time the balancer takes a dead
gateway out.
SIGTERM or SIGINT ends it after the round in progress, with exit status 0.

    >>> s = BackendState(fall=2, rise=2)
    >>> [s.record(ok) for ok in (False, False, True, True)], s.up
    ([False, True, False, True], True)
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import AovpnError, InventoryError
from ..ike.numbers import IKE_PORT
from ..tool import run as run_tool
from .health import CHECKS, HealthResult

__all__ = ["Backend", "BackendState", "StateFile", "Thresholds", "main", "parse_backend", "run"]


@dataclass(frozen=True)
class Backend:
    name: str
    address: str
    port: int | None = None  # None: the check's port (500)


@dataclass(frozen=True)
class Thresholds:
    fall: int = 2
    rise: int = 2
    initial_up: bool = True  # a fresh monitor keeps every backend until it has failed `fall` checks

    @classmethod
    def from_config(cls, health_monitor: Mapping, where: str = "load_balancer.health_monitor.") -> "Thresholds":
        """``fall`` and ``rise`` of lb.yml's ``health_monitor``, checked (InventoryError naming the key).

        ``where`` prefixes the key in the message (``--`` for the command's options).
        """
        values = {}
        for key in ("fall", "rise"):
            value = health_monitor.get(key, getattr(cls, key))
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InventoryError(f"{where}{key}: expected a whole number >= 1, got {value!r}",
                                     hint=f"give {key} as 2 or more consecutive checks before the state changes")
            values[key] = value
        return cls(**values)


class BackendState:
    """One backend's rise/fall counter."""

    def __init__(self, fall: int, rise: int, up: bool = True):
        self.fall, self.rise, self.up = fall, rise, up
        self.streak = 0  # consecutive results against the current state

    def record(self, ok: bool) -> bool:
        """Count one check result; True when it changed the state."""
        if ok == self.up:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak >= (self.rise if ok else self.fall):
            self.up, self.streak = ok, 0
            return True
        return False


def _checked(check: Callable[[Backend], HealthResult], backend: Backend) -> HealthResult:
    try:
        return check(backend)
    except Exception as exc:  # a check that breaks counts as a failed check, and says why
        return HealthResult(False, f"check failed: {exc!r}")


def run(backends: Sequence[Backend], check: Callable[[Backend], HealthResult], interval: float,
        on_change: Callable[[tuple[str, ...]], None], stop_event, *, thresholds: Thresholds = Thresholds(),
        clock: Callable[[], float] = time.monotonic,
        on_round: Callable[[dict[str, HealthResult]], None] | None = None,
        after_round: Callable[[tuple[str, ...]], None] | None = None) -> None:
    """Check ``backends`` every ``interval`` s until ``stop_event`` is set.

    ``on_change(live)`` gets the live names (in ``backends`` order) after the first round
    and on every change; ``on_round(results)`` (optional) gets each round's results
    before that, and ``after_round(live)`` (optional) the live set as announced once the
    round is over. ``stop_event`` needs ``is_set()`` and ``wait(seconds)`` (threading.Event).
    """
    states = {b.name: BackendState(thresholds.fall, thresholds.rise, thresholds.initial_up) for b in backends}
    announced: tuple[str, ...] | None = None
    with ThreadPoolExecutor(max_workers=max(1, len(backends)), thread_name_prefix="health") as pool:
        while not stop_event.is_set():
            started = clock()
            results = dict(zip((b.name for b in backends), pool.map(lambda b: _checked(check, b), backends)))
            for name, result in results.items():
                states[name].record(result.up)
            if on_round is not None:
                on_round(results)
            live = tuple(b.name for b in backends if states[b.name].up)
            if live != announced:
                try:
                    on_change(live)
                    announced = live
                except (AovpnError, OSError) as exc:
                    print(f"aovpn-lab monitor: on-change for {' '.join(live) or '(none)'} failed, "
                          f"trying again next round: {exc}", file=sys.stderr, flush=True)
            if after_round is not None and announced is not None:
                after_round(announced)
            if stop_event.wait(max(0.0, started + interval - clock())):
                break


class StateFile:
    """DIR/live.json, replaced whole on every write (a reader never sees half of it)."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.path = self.dir / "live.json"

    def read(self) -> dict:
        """What the monitor wrote last; {} before its first round (or while it cannot be read)."""
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def write(self, live: Sequence[str], results: Mapping[str, HealthResult], round_no: int | None = None) -> dict:
        doc = {"ts": round(time.time(), 3), "live": list(live),
               "backends": {name: r.to_json() for name, r in results.items()}}
        if round_no is not None:
            doc["round"] = round_no
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".live.", suffix=".json", dir=self.dir)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return doc


def parse_backend(text: str) -> Backend:
    """``NAME=ADDR``, ``NAME=ADDR:PORT`` or ``NAME=[V6ADDR]:PORT``."""
    hint = "give each backend as NAME=ADDR or NAME=ADDR:PORT, e.g. --backend gw1=198.18.1.10"
    name, sep, addr = text.partition("=")
    if not sep or not name or not addr:
        raise AovpnError(f"--backend '{text}' is not NAME=ADDR", hint=hint)
    port = None
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        addr, port_text = host, rest[1:] if rest.startswith(":") else None
    elif addr.count(":") == 1:
        addr, port_text = addr.split(":")
    else:
        port_text = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise AovpnError(f"--backend '{text}': port '{port_text}' is not 1..65535", hint=hint)
        port = int(port_text)
    return Backend(name, addr, port)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aovpn_lab.balancer.monitor",
                                description="Health-check the balancer's backends and keep the live set.")
    p.add_argument("--check", choices=sorted(CHECKS), default="ike", help="ike (default) or udp-port")
    p.add_argument("--backend", action="append", default=[], metavar="NAME=ADDR[:PORT]", help="repeat per backend")
    p.add_argument("--backends-from", metavar="FILE",
                   help="also every backend of a balancer.json (the lab balancer's settings, load_balancer.backends)")
    p.add_argument("--port", type=int, default=IKE_PORT, help="port checked when a backend names none (500)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between rounds (1.0)")
    p.add_argument("--timeout", type=float, default=0.5, help="seconds a check waits (0.5)")
    p.add_argument("--fall", type=int, default=2, help="consecutive failures before down (2)")
    p.add_argument("--rise", type=int, default=2, help="consecutive successes before up (2)")
    p.add_argument("--state", required=True, metavar="DIR", help="directory for live.json")
    p.add_argument("--on-change", metavar="CMD", help="run CMD with the live names appended on each change")
    p.add_argument("--switch", metavar="DIR", type=Path,
                   help="on each change, send the lab balancer whose state folder is DIR to the live gateways")
    return p


def _settings(args) -> tuple[list[Backend], Thresholds]:
    backends = [parse_backend(text) for text in args.backend]
    if args.backends_from:
        from .switch import load
        config = load(Path(args.backends_from).parent)
        backends += [Backend(b.name, b.address, None) for b in config.backends]
    if not backends:
        raise AovpnError("no backend to check", hint="give --backend NAME=ADDR once per backend")
    names = [b.name for b in backends]
    if len(set(names)) != len(names):
        raise AovpnError(f"backend names repeat: {' '.join(names)}", hint="give each backend its own name")
    if not args.interval > 0 or not 0 < args.timeout <= args.interval:
        raise AovpnError(f"--timeout {args.timeout:g} and --interval {args.interval:g}: need 0 < timeout <= interval",
                         hint="e.g. --interval 1 --timeout 0.5, as lb.yml's health_monitor")
    thresholds = Thresholds.from_config({"fall": args.fall, "rise": args.rise}, where="--")
    return backends, thresholds


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        backends, thresholds = _settings(args)
    except AovpnError as exc:
        print(f"aovpn-lab monitor: error: {exc}", file=sys.stderr)
        return exc.exit_code
    fn = CHECKS[args.check]

    def check(b: Backend) -> HealthResult:
        return fn(b.address, port=b.port or args.port, timeout=args.timeout)

    state = StateFile(args.state)
    hook = shlex.split(args.on_change) if args.on_change else None
    latest: dict[str, HealthResult] = {}
    written: list[tuple[str, ...]] = []  # the last live set written and printed
    rounds = [0, 0]  # [this round's number, the last one written to live.json]

    def on_round(results: dict[str, HealthResult]) -> None:
        latest.update(results)
        rounds[0] += 1

    def on_change(live: tuple[str, ...]) -> None:
        if not written or written[-1] != live:
            doc = state.write(live, latest, rounds[0])
            rounds[1] = rounds[0]
            print(json.dumps(doc), flush=True)
            written.append(live)
        if args.switch is not None:
            from .switch import apply
            apply(args.switch, live=list(live))
        if hook:  # after the file: the command may read live.json
            run_tool([*hook, *live], step="on-change").check()

    def after_round(live: tuple[str, ...]) -> None:
        if rounds[1] != rounds[0]:  # the round is over: its number, with the live set as announced
            state.write(live, latest, rounds[0])
            rounds[1] = rounds[0]

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(backends, check, args.interval, on_change, stop, thresholds=thresholds, on_round=on_round,
        after_round=after_round)
    return 0


if __name__ == "__main__":
    sys.exit(main())
