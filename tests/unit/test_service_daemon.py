"""aovpn_lab.service with real processes: a small Python TCP server as the daemon."""
from __future__ import annotations

import os
import signal
import socket
import sys
import time

import pytest

from aovpn_lab.service import Daemon, DaemonSpec, ServiceError
from aovpn_lab.service.process import ProcessId

SERVER = """
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("starting on", sys.argv[1], flush=True)
if sys.argv[2] == "fail":
    print("config line 3: unknown key 'bogus'", flush=True)
    sys.exit(3)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if sys.argv[2] != "mute":
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen()
while True:
    signal.pause()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make(tmp_path, mode: str = "serve", **kw) -> Daemon:
    (tmp_path / "server.py").write_text(SERVER)
    spec = DaemonSpec(name="toy", binary=sys.executable, argv=("{binary}", "{state}/server.py", "{port}", mode),
                      ready={"tcp": ["127.0.0.1:{port}"]}, console="toy.out", pidfile="toy.pid")
    return Daemon(spec, tmp_path, values={"port": free_port()}, **kw)


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_start_records_pid_start_time_and_executable_then_stops_by_pid(tmp_path):
    d = make(tmp_path)
    d.start(timeout=10)
    try:
        rec = d.recorded()
        main = ProcessId.from_record(rec["processes"][0])
        assert main == ProcessId.of(main.pid) and main.alive()
        assert (tmp_path / "toy.pid").read_text() == f"{main.pid}\n"
        assert d.running and d.pids() == [main.pid] and d.status()["ready"] is True
        assert rec["values"]["port"] == d.values["port"]
    finally:
        result = d.stop()
    assert result == {"stopped": [main.pid], "killed": []}
    assert gone(main.pid) and not d.running and d.pids() == []
    assert not (tmp_path / "toy.pid").exists()
    assert d.stop() == {"stopped": [], "killed": []}  # twice is fine


def test_a_pid_whose_start_time_differs_is_not_ours(tmp_path):
    d = make(tmp_path)
    d.start(timeout=10)
    rec = d.recorded()
    real = dict(rec["processes"][0])
    try:
        rec["processes"][0] = {**real, "start_ticks": real["start_ticks"] + 1}
        d.record_path.write_text(__import__("json").dumps(rec))
        assert not d.running and d.pids() == []
        assert d.stop()["stopped"] == []  # a foreign PID is never signalled
        assert not gone(real["pid"])
    finally:
        rec["processes"][0] = real
        d.record_path.write_text(__import__("json").dumps(rec))
        assert d.stop()["stopped"] == [real["pid"]]


def test_status_after_the_daemon_died(tmp_path):
    d = make(tmp_path)
    d.start(timeout=10)
    pid = d.pids()[0]
    os.kill(pid, signal.SIGKILL)
    while not gone(pid):
        time.sleep(0.01)
    status = d.status()
    assert status["running"] is False and status["pids"] == [] and status["ready"] is None
    assert d.stop() == {"stopped": [], "killed": []}


def test_a_failed_start_quotes_the_log_tail(tmp_path):
    d = make(tmp_path, mode="fail", error=ServiceError)
    with pytest.raises(ServiceError) as err:
        d.start(timeout=10)
    assert "exited with status 3" in str(err.value)
    assert "config line 3: unknown key 'bogus'" in str(err.value) and "toy.out" in str(err.value)
    assert not d.running and d.processes() == []


def test_a_daemon_that_never_gets_ready_is_stopped(tmp_path):
    d = make(tmp_path, mode="mute")
    with pytest.raises(ServiceError, match="did not listen on 127.0.0.1:"):
        d.start(timeout=1.5)
    pid = ProcessId.from_record((d.recorded().get("processes") or [None])[0])
    assert pid is None and not d.running


def test_a_busy_port_is_refused_before_starting(tmp_path):
    d = make(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", d.values["port"]))
        s.listen()
        with pytest.raises(ServiceError, match="already in use"):
            d.start(timeout=5)
    assert not d.console.exists()


def test_ensure_restarts_only_when_the_digest_changes(tmp_path):
    d = make(tmp_path)
    prepared = []
    try:
        first = d.ensure("one", lambda: prepared.append(1), timeout=10)
        pid = d.pids()[0]
        again = d.ensure("one", lambda: prepared.append(2), timeout=10)
        assert first["changed"] and not first["restarted"] and not again["changed"]
        assert d.pids() == [pid] and prepared == [1]
        other = d.ensure("two", lambda: prepared.append(3), timeout=10)
        assert other["changed"] and other["restarted"] and d.pids() != [pid] and gone(pid)
        assert d.recorded()["digest"] == "two" and prepared == [1, 3]
    finally:
        d.stop()


UNIX_SERVER = """
import os, signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
time.sleep(0.2)
open(sys.argv[2], "a").write("loaded 3 modules\\nReady to serve\\n")
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen()
with open("/run/toy-private", "w") as f:   # /run is the daemon's own (a private tmpfs)
    f.write("x")
while True:
    signal.pause()
"""


def unix_daemon(tmp_path, ready: dict, **extra) -> Daemon:
    (tmp_path / "server.py").write_text(UNIX_SERVER)
    spec = DaemonSpec(name="toy", binary=sys.executable,
                      argv=("{binary}", "{state}/server.py", "{state}/toy.sock", "{state}/toy.log"),
                      ready=ready, log="toy.log", console="toy.out", mounts=({"tmpfs": "/run"},), **extra)
    return Daemon(spec, tmp_path)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="private mounts need root")


@needs_root
@pytest.mark.parametrize("ready", [{"unix": "{state}/toy.sock"}, {"log": "Ready to serve"}])
def test_unix_socket_and_log_readiness_in_a_private_mount_namespace(tmp_path, ready):
    d = unix_daemon(tmp_path, ready)
    (tmp_path / "toy.log").write_text("Ready to serve\n")  # an earlier run's line does not count
    d.start(timeout=10)
    try:
        assert (tmp_path / "toy.sock").is_socket() and (tmp_path / "toy.log").read_text().count("Ready") == 2
        assert not os.path.exists("/run/toy-private")  # the daemon's /run is its own
        assert d.argv()[:4] == ["unshare", "--mount", "--propagation", "private"]
    finally:
        pid = d.pids()[0]
        assert d.stop()["stopped"] == [pid]
    assert not d.running


def test_the_data_file_describes_every_daemon_completely():
    from aovpn_lab import paths
    from aovpn_lab.service.spec import specs
    entries = specs()
    assert {"charon", "ocserv", "freeradius", "softether", "sshd"} <= set(entries)
    for entry in entries.values():
        assert entry.ready_kind in ("tcp", "unix", "log") and entry.argv
        for template in entry.templates.values():
            assert (paths.ROOT / template).is_file(), template


def test_a_malformed_entry_is_refused_naming_the_key(tmp_path):
    from aovpn_lab.errors import AovpnError
    from aovpn_lab.service.spec import specs
    bad = tmp_path / "daemons.yml"
    bad.write_text("daemons:\n  x: {binary: /bin/true, argv: [true], ready: {port: 1}}\n")
    with pytest.raises(AovpnError, match="daemons.x.ready"):
        specs(bad)
    bad.write_text("daemons:\n  x: {binary: /bin/true, argv: [true], ready: {unix: /s}, colour: red}\n")
    with pytest.raises(AovpnError, match="unknown key.*colour"):
        specs(bad)


def test_a_socket_file_nobody_listens_on_is_not_ready(tmp_path):
    from aovpn_lab.service.ready import Ready
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    ready = Ready("unix", [str(path)])
    assert not ready.check(None)  # bound, not listening: what a dead daemon leaves behind
    s.listen()
    assert ready.check(None)
    s.close()
