"""One daemon in a network namespace, supervised by the PID it recorded.

`Daemon` starts what profiles/daemons.yml describes (under ``ip netns exec NS``, in a
private mount namespace when the entry has mounts), records its PID, start time and
executable in the state folder as soon as the process runs the expected binary (so a
start that fails half-way can still be stopped), waits for its readiness test, and
stops it by that record only: SIGTERM, a grace period, SIGKILL. A record whose PID now
belongs to another process (start time or executable differ) is never signalled.
`ensure` is the idempotent "up": it keeps a running instance whose configuration
digest is the recorded one and restarts it otherwise.

    >>> d = Daemon("ocserv", "/nonexistent/state")
    >>> d.running, d.pids(), d.stop()
    (False, [], {'stopped': [], 'killed': []})
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import AovpnError
from .process import ProcessId, children, exe_of, runs
from .ready import Ready
from .spec import DaemonSpec, spec

# Popen objects of the daemons this process started, so that stop() reaps them instead
# of leaving zombies behind (and Python warning when it collects them).
_STARTED: dict[int, subprocess.Popen] = {}


class ServiceError(AovpnError):
    """A lab daemon could not be started or stopped."""


def _reap() -> None:
    for pid, proc in list(_STARTED.items()):
        if proc.poll() is not None:
            _STARTED.pop(pid, None)


class Daemon:
    """A daemon of profiles/daemons.yml with its state folder (and namespace, if any).

    `values` fill the entry's {placeholders} ({state} is the state folder); `error` is
    the exception class the service reports with.
    """

    def __init__(self, daemon: str | DaemonSpec, state_dir: str | Path, netns: str | None = None, *,
                 values: dict[str, Any] | None = None, error: type[AovpnError] = ServiceError) -> None:
        self.spec = spec(daemon) if isinstance(daemon, str) else daemon
        self.state_dir = Path(state_dir).absolute()
        self._netns = netns
        self.error = error
        self._values = dict(values or {})

    # -- where things are ---------------------------------------------------------------
    @property
    def values(self) -> dict[str, Any]:
        recorded = self.recorded().get("values") or {}
        return {**recorded, **self._values, "state": str(self.state_dir)}

    @property
    def record_path(self) -> Path:
        return self.state_dir / self.spec.record

    @property
    def console(self) -> Path:
        return self.state_dir / self.spec.console

    @property
    def log(self) -> Path | None:
        return self.state_dir / self.spec.log if self.spec.log else None

    @property
    def binary(self) -> Path:
        return Path(self.spec.binary_for(self.values))

    @property
    def netns(self) -> str | None:
        return self._netns or self.recorded().get("netns")

    def _where(self, netns: str | None) -> str:
        return f"namespace {netns}" if netns else "this namespace"

    # -- the record -----------------------------------------------------------------------
    def recorded(self) -> dict[str, Any]:
        try:
            data = json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.record_path.with_name(self.record_path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.record_path)

    def note(self, **fields: Any) -> None:
        """Keep service facts (digests, ports, users) beside the PID record."""
        data = self.recorded()
        data.update(fields)
        self._write(data)

    def processes(self) -> list[ProcessId]:
        found = (ProcessId.from_record(e) for e in self.recorded().get("processes") or [])
        return [p for p in found if p is not None]

    @property
    def running(self) -> bool:
        """Every recorded process is still the one that was started."""
        procs = self.processes()
        return bool(procs) and all(p.alive() for p in procs)

    def main(self) -> ProcessId | None:
        procs = self.processes()
        return procs[0] if procs and procs[0].alive() else None

    def pids(self) -> list[int]:
        """The main process and every live process it forked running the same binary."""
        main = self.main()
        return [main.pid] + [c.pid for c in children(main)] if main else []

    # -- start ---------------------------------------------------------------------------
    def ready_test(self) -> Ready:
        return Ready(self.spec.ready_kind, self.spec.ready_for(self.values), log=self.log)

    def argv(self) -> list[str]:
        values = self.values
        argv = self.spec.argv_for(values)
        if self.spec.mounts:
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    self.spec.mount_script(values, argv)]
        return (["ip", "netns", "exec", self._netns] if self._netns else []) + argv

    def start(self, timeout: float = 10.0) -> int:
        """Start the daemon; the milliseconds until it was ready."""
        netns = self._netns
        if netns:
            from ..ike.craft_netns import require_netns
            require_netns(netns, self.error)
        if self.running:
            raise self.error(f"{self.spec.name} of {self.state_dir} already runs as PID {self.pids()[0]}",
                             hint="stop it first")
        exe = exe_of(self.binary)
        if exe is None:
            raise self.error(f"{self.binary} is missing", hint=f"install {self.spec.name}")
        ready = self.ready_test()
        busy = ready.busy(netns)
        if busy:
            raise self.error(f"{' and '.join(busy)} in {self._where(netns)} is already in use",
                             hint="stop whatever listens there, or choose another port")
        ready.mark()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.console.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with open(self.console, "ab") as console:
            os.chmod(self.console, 0o600)
            proc = subprocess.Popen(self.argv(), env={**os.environ, **self.spec.environment_for(self.values)},
                                    stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True)
        _STARTED[proc.pid] = proc
        main: ProcessId | None = None
        deadline = began + timeout
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                self._forget()
                raise self.error(f"{self.spec.name} in {self._where(netns)} exited with status {code} during "
                                 f"start: {self.tail(since=ready.offset, match=self.spec.errors)}", hint=self._see())
            if main is None and runs(proc.pid, exe):
                # `ip netns exec`, unshare and sh all exec: the PID becomes the daemon's.
                # Recorded at once, so that a start that fails from here is stopped by PID.
                main = ProcessId.of(proc.pid)
                if main is not None:
                    self._record_start(netns, [main])
            if main is not None and ready.check(netns):
                self._record_start(netns, [main, *(children(main) if self.spec.worker else [])])
                return int((time.monotonic() - began) * 1000)
            time.sleep(0.03)
        why = self.tail(since=ready.offset, match=self.spec.errors)
        self.stop()
        raise self.error(f"{self.spec.name} in {self._where(netns)} did not {ready.describe()} within "
                         f"{timeout:g} s: {why}", hint=self._see())

    def _record_start(self, netns: str | None, procs: list[ProcessId]) -> None:
        data = self.recorded()
        data.update(daemon=self.spec.name, netns=netns, started=time.time(), values=self._values,
                    processes=[p.record() for p in procs])
        self._write(data)
        if self.spec.pidfile:
            (self.state_dir / self.spec.pidfile).write_text(f"{procs[0].pid}\n")

    def _forget(self) -> None:
        data = self.recorded()
        if data:
            data["processes"] = []
            self._write(data)
        if self.spec.pidfile:
            (self.state_dir / self.spec.pidfile).unlink(missing_ok=True)

    def _see(self) -> str:
        return "see " + " and ".join(str(p) for p in (self.console, self.log) if p is not None)

    # -- stop ----------------------------------------------------------------------------
    def stop(self, grace: float = 4.0) -> dict[str, list[int]]:
        """SIGTERM what this daemon recorded (then SIGKILL); nothing else is ever signalled."""
        procs = [p for p in self.processes() if p.alive()]
        if procs:
            # A worker its watchdog restarted after a crash is ours too: a child of our
            # main process, running our binary.
            known = {p.pid for p in procs}
            procs += [c for c in children(procs[0]) if c.pid not in known]
        targets = procs if self.spec.worker else procs[:1]  # the main process stops its own
        stopped = self._signal(targets, signal.SIGTERM)
        self._wait(procs, grace)
        killed = self._signal([p for p in procs if p.alive()], signal.SIGKILL)
        self._wait(procs, 2.0)
        _reap()
        left = [p.pid for p in procs if p.alive()]
        if left:
            raise self.error(f"{self.spec.name} PIDs {left} did not exit after SIGKILL")
        if self.recorded():
            self._forget()
        return {"stopped": stopped, "killed": killed}

    @staticmethod
    def _signal(procs: list[ProcessId], sig: int) -> list[int]:
        sent = []
        for p in procs:
            try:
                os.kill(p.pid, sig)
                sent.append(p.pid)
            except ProcessLookupError:
                pass
        return sent

    @staticmethod
    def _wait(procs: list[ProcessId], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(p.alive() for p in procs):
            _reap()
            time.sleep(0.02)

    # -- up --------------------------------------------------------------------------------
    def ensure(self, digest: str, prepare: Callable[[], None] | None = None, *, timeout: float = 10.0,
               force: bool = False) -> dict[str, Any]:
        """Keep a running instance started with `digest`; otherwise (re)start it.

        `prepare` writes the configuration and runs only when a start follows (a running
        daemon keeps the files it read).
        """
        restarted = False
        if self.running and not force and self.recorded().get("digest") == digest:
            return {"changed": False, "restarted": False, "start_ms": None}
        if self.running:
            restarted = True
        if any(p.alive() for p in self.processes()):
            self.stop()  # a running or a half-started instance
        if prepare is not None:
            prepare()
        start_ms = self.start(timeout)
        self.note(digest=digest)
        return {"changed": True, "restarted": restarted, "start_ms": start_ms}

    # -- looking at it -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        running = self.running
        netns = self.netns
        ready = self.ready_test().check(netns) if running and self.spec.ready_kind != "log" else None
        return {"running": running, "netns": netns, "pids": self.pids(), "ready": ready}

    def tail(self, lines: int = 5, since: int = 0, match: str | None = None) -> str:
        """The last lines of the console and of the daemon's log, for an error message.

        `since`: where the log ended before the start; `match`: only lines matching this
        regular expression (a daemon that logs every request).
        """
        picked: list[str] = []
        for path, offset in ((self.console, 0), (self.log, since)):
            if path is None:
                continue
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset if path.stat().st_size >= offset else 0)
                    text = handle.read().decode(errors="replace")
            except OSError:
                continue
            found = [line.strip() for line in text.splitlines() if line.strip()]
            if match:
                found = [line for line in found if re.search(match, line)]
            picked += found[-lines:]
        return " | ".join(picked[-lines:]) or "(no output)"


def config_digest(daemon: Daemon) -> str:
    """What the running daemon read: its config files and its namespace."""
    h = hashlib.sha256(json.dumps([daemon.netns, daemon.spec.argv_for(daemon.values)]).encode())
    for name in sorted(daemon.spec.templates):
        path = daemon.state_dir / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AovpnError(f"cannot read {path}: {exc.strerror}", hint="write the configuration first") from None
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()
