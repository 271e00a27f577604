"""aovpn_lab.capture.command (`aovpn-lab diagnose`) and the Capture helper's checks."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aovpn_lab.capture import command
from aovpn_lab.capture.capture import DEFAULT_BPF, Capture
from aovpn_lab.capture.errors import CaptureToolError

PCAP = Path(__file__).resolve().parents[1] / "data" / "pcap"


def pair(name):
    return str(PCAP / f"{name}-client.pcap"), str(PCAP / f"{name}-server.pcap")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aovpn-lab")
    sub = p.add_subparsers(dest="command", required=True)
    command.register(sub)
    return p


def run(argv, capsys):
    args = parser().parse_args(argv)
    rc = args.func(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_register_and_help(capsys):
    with pytest.raises(SystemExit) as ei:
        parser().parse_args(["diagnose", "--help"])
    assert ei.value.code == 0
    text = capsys.readouterr().out
    for words in ("--client CLIENT.pcap", "--server SERVER.pcap", "--json", "ip-fragments-dropped",
                  "udp-4500-blocked", "exit status: 0 established, 1 not established, 2 bad input", "tcpdump"):
        assert words in text, words


def test_both_files_are_required(capsys):
    with pytest.raises(SystemExit) as ei:
        parser().parse_args(["diagnose", "--client", "c.pcap"])
    assert ei.value.code == 2 and "--server" in capsys.readouterr().err


def test_established_exits_0(capsys):
    c, s = pair("success-small")
    rc, out, err = run(["diagnose", "--client", c, "--server", s], capsys)
    assert rc == 0 and "ESTABLISHED" in out and err == ""


def test_not_established_exits_1_with_summary(capsys):
    c, s = pair("large-fragdrop")
    rc, out, _ = run(["diagnose", "--client", c, "--server", s], capsys)
    assert rc == 1
    assert "cause ip-fragments-dropped, lost initiator-to-responder" in out and "What to change:" in out


def test_json_output(capsys):
    c, s = pair("udp4500-blocked")
    rc, out, _ = run(["diagnose", "--client", c, "--server", s, "--json"], capsys)
    j = json.loads(out)
    assert rc == 1 and (j["established"], j["cause"], j["direction"]) == (False, "udp-4500-blocked",
                                                                           "initiator-to-responder")
    assert j["uses_ip_fragmentation"] is False and j["evidence"]["exchanges"]


@pytest.mark.parametrize("content", [b"", b"not a capture at all", "truncated"])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, content):
    c, s = pair("success-small")
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(Path(c).read_bytes()[:-5] if content == "truncated" else content)
    rc, out, err = run(["diagnose", "--client", str(bad), "--server", s], capsys)
    assert rc == 2 and out == ""
    assert err.startswith("aovpn-lab diagnose: error: ") and str(bad) in err and err.count("\n") == 1


def test_mismatched_captures_exit_2(capsys):
    rc, _, err = run(["diagnose", "--client", pair("success-small")[0], "--server", pair("snat")[1]], capsys)
    assert rc == 2 and "shares no IKE SA" in err


def test_module_runs_standalone_without_traceback(tmp_path):
    missing = tmp_path / "missing.pcap"
    res = subprocess.run([sys.executable, "-m", "aovpn_lab.capture.command", "--client", str(missing),
                          "--server", pair("snat")[1]], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "no such file" in res.stderr
    c, s = pair("snat")
    res = subprocess.run([sys.executable, "-m", "aovpn_lab.capture.command", "--client", c, "--server", s],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and "NAT between the captures" in res.stdout


# --------------------------------------------------------------------------- Capture helper


def test_capture_command_line(tmp_path):
    cap = Capture("hxd-c", "hxd-c0", tmp_path / "c.pcap")
    argv = cap.argv()
    assert argv[:5] == ["ip", "netns", "exec", "hxd-c", "tcpdump"]
    for flag in ("-U", "--immediate-mode", "-n"):
        assert flag in argv
    assert argv[argv.index("-s") + 1] == "0" and argv[argv.index("-i") + 1] == "hxd-c0"
    assert argv[argv.index("-w") + 1] == str(tmp_path / "c.pcap") and argv[-1] == DEFAULT_BPF
    assert Capture(None, "eth0", "x.pcap", bpf="").argv()[0] == "tcpdump"
    assert "ip[6:2] & 0x3fff != 0" in DEFAULT_BPF and "udp port 4500" in DEFAULT_BPF


def test_capture_refuses_a_missing_namespace(tmp_path):
    cap = Capture("hxd-does-not-exist", "eth0", tmp_path / "x.pcap")
    with pytest.raises(CaptureToolError, match="hxd-does-not-exist.*does not exist"):
        cap.start()
    assert cap.proc is None and cap.stop() == {}


def test_capture_reports_missing_tcpdump(tmp_path):
    with pytest.raises(CaptureToolError, match="not installed"):
        Capture(None, "lo", tmp_path / "x.pcap", tcpdump="/nonexistent/tcpdump").start()


@pytest.mark.skipif(os.geteuid() != 0, reason="tcpdump needs root")
def test_capture_reports_a_bad_filter(tmp_path):
    cap = Capture(None, "lo", tmp_path / "x.pcap", bpf="udp port nonsense-port-name")
    with pytest.raises(CaptureToolError, match="exited at start-up"):
        cap.start()
    assert cap.proc is None


def test_building_the_command_line_imports_neither_scapy_nor_ansible():
    """Every aovpn-lab command builds the whole parser first: what only a diagnosis, a scan
    or an inventory needs (scapy, ansible) is imported by the command that runs, not by --help."""
    import subprocess
    import sys
    code = ("import sys; from aovpn_lab import cli; cli.build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'scapy', 'ansible', 'ansible_runner'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
