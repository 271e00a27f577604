"""aovpn_lab.balancer.health against loopback sockets, and the rise/fall monitor of
aovpn_lab.balancer.monitor with scripted check results and a fake clock.

The IKE responders are threads on 127.0.0.1 answering with messages built from scapy's
IKEv2 layers; every socket is closed by the test that opened it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from scapy.contrib.ikev2 import IKEv2, IKEv2_Notify

from aovpn_lab.balancer import health, monitor
from aovpn_lab.balancer.health import HealthResult
from aovpn_lab.errors import AovpnError, InventoryError
from aovpn_lab.ike import transport
from aovpn_lab.ike.craft import DEFAULT_REACH_PROPOSALS, build_ike_sa_init
from aovpn_lab.ike.transforms import parse_proposal
from aovpn_lab.ike.wire import parse, payload_chain


class Responder:
    """A UDP socket on loopback answering each datagram with ``answer(request)`` (None: silence)."""

    def __init__(self, answer):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.answer, self.requests = answer, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            self.requests.append(data)
            for reply in self.answer(data) or ():
                self.sock.sendto(reply, peer)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def ike_response(request: bytes, *notifies, flags="Response", exch=34) -> bytes:
    pkt = IKEv2(init_SPI=request[:8], resp_SPI=b"\x00" * 8, exch_type=exch, flags=flags)
    for n in notifies:
        pkt = pkt / n
    return bytes(pkt)


def invalid_ke(request):
    return [ike_response(request, IKEv2_Notify(type=17, notify=struct.pack("!H", 14)))]


def free_port() -> int:
    """A loopback UDP port nothing listens on (bound, then closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------- udp-port


def test_udp_port_check_counts_a_bound_but_silent_port_as_up():
    with Responder(lambda req: None) as r:
        result = health.udp_port_check("127.0.0.1", port=r.port, timeout=0.2)
        deadline = time.monotonic() + 1
        while not r.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.requests == [health.UDP_PAYLOAD]
    assert result.up and "silence" in result.reason and result.rtt_ms is None


def test_udp_port_check_counts_an_unbound_port_as_down_by_icmp_port_unreachable():
    result = health.udp_port_check("127.0.0.1", port=free_port(), timeout=1.0)
    assert not result.up and "ICMP port unreachable" in result.reason
    assert result.rtt_ms is not None and result.rtt_ms < 1000  # refused, not timed out


def test_udp_port_check_is_up_when_the_port_answers():
    with Responder(lambda req: [b"pong"]) as r:
        result = health.udp_port_check("127.0.0.1", port=r.port, timeout=1.0)
    assert result.up and result.reason == f"UDP {r.port} answered" and result.rtt_ms is not None


# --------------------------------------------------------------------------- ike


def test_ike_check_is_up_on_invalid_ke_and_offers_a_decoy_group_so_no_sa_is_made():
    with Responder(invalid_ke) as r:
        result = health.ike_check("127.0.0.1", port=r.port, timeout=1.0)
    assert result.up and result.reason == "INVALID_KE_PAYLOAD (wants group modp2048)"
    assert result.rtt_ms is not None and result.rtt_ms < 1000
    # the request: an IKE_SA_INIT whose KE group is in none of its proposals
    pkt = parse(r.requests[0])
    assert pkt is not None and pkt.exch_type == 34
    layers = dict((t, layer) for t, layer in payload_chain(pkt))
    ke_group = int(layers[34].group)
    offered = {g.id for text in DEFAULT_REACH_PROPOSALS for g in parse_proposal(text).dh}
    assert ke_group not in offered


@pytest.mark.parametrize("notify, words", [
    (IKEv2_Notify(type=14), "NO_PROPOSAL_CHOSEN"),
    (IKEv2_Notify(type=16390, notify=b"c" * 16), "COOKIE"),
])
def test_ike_check_takes_any_ike_sa_init_answer_as_up(notify, words):
    with Responder(lambda req: [ike_response(req, notify)]) as r:
        result = health.ike_check("127.0.0.1", port=r.port, timeout=1.0)
    assert result.up and words in result.reason


def test_ike_check_is_down_when_the_responder_answers_garbage():
    with Responder(lambda req: [b"this is not IKE at all, just bytes"]) as r:
        result = health.ike_check("127.0.0.1", port=r.port, timeout=0.3)
    assert not result.up
    assert result.reason == "no IKE answer within 0.3 s (1 datagram(s) came back that were not an IKE answer to the check)"


def test_ike_check_is_down_when_the_answer_echoes_the_spi_but_is_not_ike():
    with Responder(lambda req: [req[:8] + b"\x00junk"]) as r:
        result = health.ike_check("127.0.0.1", port=r.port, timeout=1.0)
    assert not result.up and "malformed IKE message" in result.reason


def test_ike_check_is_down_when_the_answer_is_an_ike_request():
    with Responder(lambda req: [ike_response(req, IKEv2_Notify(type=17, notify=b"\x00\x0e"), flags="Initiator")]) as r:
        result = health.ike_check("127.0.0.1", port=r.port, timeout=1.0)
    assert not result.up and "not an IKE_SA_INIT response" in result.reason


def test_ike_check_is_down_on_silence_after_the_timeout():
    with Responder(lambda req: None) as r:
        start = time.monotonic()
        result = health.ike_check("127.0.0.1", port=r.port, timeout=0.3)
        took = time.monotonic() - start
    assert not result.up and result.reason == "no IKE answer within 0.3 s" and result.rtt_ms is None
    assert 0.25 < took < 2


def test_ike_check_is_down_on_an_unbound_port():
    result = health.ike_check("127.0.0.1", port=free_port(), timeout=1.0)
    assert not result.up and "ICMP port unreachable" in result.reason


def test_ike_check_on_port_4500_uses_the_non_esp_marker():
    def answer(req):
        return [b"\x00" * 4 + invalid_ke(req[4:])[0]] if req[:4] == b"\x00" * 4 else None

    with Responder(answer) as r:
        # the marker is added for port 4500 only; here the port is the responder's
        msg = build_ike_sa_init(DEFAULT_REACH_PROPOSALS, "modp768")
        attempt = transport.probe("127.0.0.1", r.port, msg, timeout=1.0, marker=True)
    assert attempt.answer is not None and attempt.answer.kind == "invalid-ke"


def test_transport_counts_the_datagrams_it_passed_over():
    msg = build_ike_sa_init(DEFAULT_REACH_PROPOSALS, "modp768")
    other_spi = ike_response(b"\x07" * 8, IKEv2_Notify(type=14))
    with Responder(lambda req: [b"garbage", other_spi] + invalid_ke(req)) as r:
        attempt = transport.probe("127.0.0.1", r.port, msg, timeout=1.0)
    assert attempt.answer is not None and attempt.answer.kind == "invalid-ke" and attempt.ignored == 2


def test_checker_binds_kind_and_options_and_refuses_unknown_kinds():
    with Responder(invalid_ke) as r:
        assert health.checker("ike", timeout=1.0, port=r.port)("127.0.0.1").up
    with pytest.raises(AovpnError, match="unknown health check 'tcp'") as exc:
        health.checker("tcp")
    assert "ike, udp-port" in exc.value.hint


# --------------------------------------------------------------------------- monitor


class FakeClock:
    """Time that passes only when the monitor waits; stops it after ``rounds`` waits."""

    def __init__(self, rounds: int):
        self.now, self.rounds, self.waits = 1000.0, rounds, []

    def __call__(self) -> float:
        return self.now

    # the stop event's interface
    def is_set(self) -> bool:
        return self.rounds <= 0

    def wait(self, seconds: float) -> bool:
        self.waits.append(round(seconds, 6))
        self.now += seconds
        self.rounds -= 1
        return self.is_set()


def scripted(results: dict[str, str]):
    """A check whose answers per backend are a string of u (up) and d (down), one per round."""
    rounds = {name: iter(script) for name, script in results.items()}

    def check(backend: monitor.Backend) -> HealthResult:
        up = next(rounds[backend.name]) == "u"
        return HealthResult(up, "scripted up" if up else "scripted down", 1.0 if up else None)

    return check


BACKENDS = [monitor.Backend("gw1", "198.18.1.10"), monitor.Backend("gw2", "198.18.1.18")]


def test_state_goes_down_after_fall_failures_and_up_after_rise_successes():
    s = monitor.BackendState(fall=2, rise=3)
    assert s.up
    assert [s.record(ok) for ok in (False, True, False, False)] == [False, False, False, True]
    assert not s.up
    assert [s.record(ok) for ok in (True, True, False, True, True, True)] == [False, False, False, False, False, True]
    assert s.up


def test_run_reports_the_initial_set_and_every_change_once():
    changes = []
    clock = FakeClock(rounds=7)
    monitor.run(BACKENDS, scripted({"gw1": "uuuuuuuu", "gw2": "uddduuuu"}), 1.0,
                lambda live: changes.append(live), clock, thresholds=monitor.Thresholds(fall=2, rise=2), clock=clock)
    # round 1 both up; gw2 fails rounds 2-3 (down after 3), then passes 5-6 (up after 6)
    assert changes == [("gw1", "gw2"), ("gw1",), ("gw1", "gw2")]
    assert clock.waits == [1.0] * 7


def test_after_every_round_the_live_set_as_announced_is_reported():
    changes, after = [], []
    clock = FakeClock(rounds=7)
    monitor.run(BACKENDS, scripted({"gw1": "uuuuuuuu", "gw2": "uddduuuu"}), 1.0, changes.append, clock,
                thresholds=monitor.Thresholds(fall=2, rise=2), clock=clock, after_round=after.append)
    both, one = ("gw1", "gw2"), ("gw1",)
    # a round's report comes after that round's change: gw2 is out from the round it fell in
    assert after == [both, both, one, one, one, both, both]


def test_run_keeps_the_schedule_when_checks_take_time():
    clock = FakeClock(rounds=3)

    def slow(backend):
        clock.now += 0.4
        return HealthResult(True, "slow")

    monitor.run(BACKENDS[:1], slow, 1.0, lambda live: None, clock, clock=clock)
    assert clock.waits == [0.6, 0.6, 0.6]


def test_run_can_start_with_every_backend_down():
    changes = []
    clock = FakeClock(rounds=3)
    monitor.run(BACKENDS, scripted({"gw1": "uuuu", "gw2": "dddd"}), 1.0, changes.append, clock,
                thresholds=monitor.Thresholds(fall=1, rise=2, initial_up=False), clock=clock)
    assert changes == [(), ("gw1",)]


def test_a_failing_on_change_is_tried_again_next_round():
    calls = []

    def flaky(live):
        calls.append(live)
        if len(calls) == 1:
            raise AovpnError("rebuild failed")

    clock = FakeClock(rounds=2)
    monitor.run(BACKENDS[:1], scripted({"gw1": "uuu"}), 1.0, flaky, clock, clock=clock)
    assert calls == [("gw1",), ("gw1",)]


def test_thresholds_come_from_the_health_monitor_of_lb_yml():
    t = monitor.Thresholds.from_config({"kind": "ike", "interval": 1.0, "timeout": 0.5, "fall": 3, "rise": 4})
    assert (t.fall, t.rise) == (3, 4)
    with pytest.raises(InventoryError, match="health_monitor.fall") as exc:
        monitor.Thresholds.from_config({"fall": 0, "rise": 2})
    assert "whole number" in str(exc.value) and "got 0" in str(exc.value)


def test_the_inventory_health_monitor_is_one_the_monitor_accepts():
    import yaml
    lb = yaml.safe_load((Path(__file__).resolve().parents[2] / "inventories/lab/host_vars/lb.yml").read_text())
    hm = lb["load_balancer"]["health_monitor"]
    t = monitor.Thresholds.from_config(hm)
    assert (t.fall, t.rise) == (hm["fall"], hm["rise"]) and hm["kind"] in health.KINDS


def test_backend_arguments_are_name_equals_address():
    assert monitor.parse_backend("gw1=198.18.1.10") == monitor.Backend("gw1", "198.18.1.10")
    with pytest.raises(AovpnError, match="--backend 'gw1'") as exc:
        monitor.parse_backend("gw1")
    assert "NAME=ADDR" in exc.value.hint


def test_live_json_is_replaced_whole(tmp_path):
    state = monitor.StateFile(tmp_path / "state")
    state.write(("gw1",), {"gw1": HealthResult(True, "ok", 1.0)})
    doc = json.loads((tmp_path / "state" / "live.json").read_text())
    assert doc["live"] == ["gw1"] and doc["backends"]["gw1"]["up"] is True
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["live.json"]
    assert "round" not in doc
    state.write((), {"gw1": HealthResult(False, "silent")}, 7)
    assert json.loads((tmp_path / "state" / "live.json").read_text())["round"] == 7
    assert state.read()["round"] == 7 and monitor.StateFile(tmp_path / "none").read() == {}


def _monitor_cmd(state: Path, *extra: str) -> list[str]:
    # fall 2: the first round (everything up until it has failed twice) is announced as is
    return [sys.executable, "-m", "aovpn_lab.balancer.monitor", "--check", "udp-port",
            "--interval", "0.1", "--timeout", "0.05", "--fall", "2", "--rise", "1", "--state", str(state), *extra]


def _wait_for(path: Path, what, limit: float = 10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists():
            got = what(path)
            if got:
                return got
        time.sleep(0.05)
    raise AssertionError(f"{path}: condition not met in {limit} s")


def test_the_monitor_command_writes_changes_runs_the_hook_and_stops_cleanly_on_sigterm(tmp_path):
    dead = free_port()
    hook_out = tmp_path / "hook.txt"
    hook = f"{sys.executable} -c \"import sys; open('{hook_out}', 'a').write(' '.join(sys.argv[1:]) + '|')\""
    with Responder(lambda req: None) as r:
        proc = subprocess.Popen(_monitor_cmd(tmp_path / "state", "--backend", f"gw1=127.0.0.1:{r.port}",
                                             "--backend", f"gw2=127.0.0.1:{dead}", "--on-change", hook),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            live = tmp_path / "state" / "live.json"
            _wait_for(live, lambda p: json.loads(p.read_text())["live"] == ["gw1"])
            _wait_for(hook_out, lambda p: "gw1|" in p.read_text().split("gw1 gw2|")[-1])
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["live"] == ["gw1", "gw2"] and lines[-1]["live"] == ["gw1"]
    assert lines[-1]["backends"]["gw2"]["reason"].startswith("ICMP port unreachable")
    final = json.loads(live.read_text())
    assert final["live"] == ["gw1"] and final["round"] >= 2   # gw2 fell after 2 rounds; every round is counted
    assert hook_out.read_text().startswith("gw1 gw2|")
    assert not [p for p in (tmp_path / "state").iterdir() if p.name != "live.json"]


def test_the_monitor_command_refuses_a_bad_backend_with_one_line(tmp_path):
    proc = subprocess.run(_monitor_cmd(tmp_path, "--backend", "gw1"), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("aovpn-lab monitor: error: --backend 'gw1'")


def test_a_failing_hook_is_judged_by_its_exit_status(tmp_path):
    with Responder(lambda req: None) as r:
        proc = subprocess.Popen(_monitor_cmd(tmp_path / "state", "--backend", f"gw1=127.0.0.1:{r.port}",
                                             "--on-change", "sh -c 'echo rebuild refused >&2; exit 3'"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(tmp_path / "state" / "live.json", lambda p: True)
            time.sleep(0.5)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "sh exited 3: rebuild refused" in err


def test_the_monitor_gives_each_change_to_the_balancer_switch_and_retries_one_that_fails(tmp_path):
    # --switch applies the live set in the monitor's own process; a balancer that is not
    # provisioned (no balancer.json) is a failed change, said on stderr and tried again.
    with Responder(invalid_ke) as r:
        proc = subprocess.Popen(_monitor_cmd(tmp_path / "state", "--backend", f"gw1=127.0.0.1:{r.port}",
                                             "--switch", str(tmp_path / "no-balancer")),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(tmp_path / "state" / "live.json", lambda p: True)
            time.sleep(0.5)  # rounds 0.1 s apart
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    failures = [line for line in err.splitlines() if line.startswith("aovpn-lab monitor: on-change for gw1 failed")]
    assert len(failures) >= 2, err          # once per round until it succeeds
    assert "no-balancer/balancer.json" in failures[0] and "aovpn-lab lab up" in failures[0]
