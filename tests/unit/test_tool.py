"""External tools are judged by their exit status; the message carries host, step and the tool's error line."""
import sys

import pytest

from aovpn_lab import tool
from aovpn_lab.lab.playbook import Progress, task_message

# What swanctl printed on a machine without libstrongswan-extra-plugins: a warning per
# plugin of its compiled-in list, and then it did its work and exited 0.
SWANCTL_WARNINGS = (
    "plugin 'test-vectors': failed to load - test_vectors_plugin_create not found and no plugin file available\n"
    "plugin 'curve25519': failed to load - curve25519_plugin_create not found and no plugin file available\n"
)
SWANCTL_OK = "loaded certificate from '/x/x509/gw.pem'\nloaded connection 'machine-cert'\nsuccessfully loaded 1 connections, 0 unloaded\n"


def _sh(script: str) -> list[str]:
    return [sys.executable, "-c", script]


def test_a_tool_that_warns_on_stderr_and_exits_0_has_succeeded():
    r = tool.run(_sh(f"import sys; sys.stderr.write({SWANCTL_WARNINGS!r}); print('done')"), step="load credentials")
    assert r.ok and r.check() is r
    assert "failed to load" in r.stderr      # the warning is kept, it just does not decide anything


def test_a_tool_that_exits_non_zero_fails_with_host_step_and_its_error_line():
    script = ("import sys; sys.stderr.write(" + repr(SWANCTL_WARNINGS) +
              " + \"loading connection 'gw' failed: invalid value for 'proposals'\\n\"); sys.exit(1)")
    r = tool.run(_sh(script), step="load connections", host="gw1")
    assert not r.ok and r.returncode == 1
    with pytest.raises(tool.ToolError) as err:
        r.check(hint="check swanctl.conf")
    text = str(err.value)
    assert text.startswith("gw1: load connections: ")
    assert "exited 1: loading connection 'gw' failed: invalid value for 'proposals'" in text
    assert "test-vectors" not in text          # the warnings before the error are not the reason
    assert text.endswith("(fix: check swanctl.conf)")


def test_a_silent_failure_is_named_by_its_exit_status():
    r = tool.run(_sh("raise SystemExit(7)"), step="flush")
    assert r.error == "exit status 7, no output"


def test_stdout_carries_the_error_when_stderr_is_empty():
    assert tool.error_line("line one\nError: table not found\n", "", 1) == "Error: table not found"


def test_the_tool_name_is_found_behind_ip_netns_exec():
    r = tool.ToolResult(("ip", "netns", "exec", "aovpn-gw1", "/usr/sbin/conntrack", "-F"), 1, "", "boom\n",
                        "flush connection tracking", "aovpn-gw1")
    assert r.message() == "aovpn-gw1: flush connection tracking: conntrack exited 1: boom"


def test_a_missing_tool_is_one_clear_error():
    with pytest.raises(tool.ToolError, match="no-such-tool-aovpn is not installed.*apt-get install x"):
        tool.run(["no-such-tool-aovpn"], step="probe", hint="apt-get install x")


def test_a_hanging_tool_is_stopped_at_its_timeout():
    with pytest.raises(tool.ToolError, match="did not finish within 0.2 s"):
        tool.run(_sh("import time; time.sleep(5)"), step="wait", timeout=0.2)



# -- the same rule for Ansible command tasks ---------------------------------------------

def test_a_failed_command_task_names_the_tool_its_exit_status_and_its_error_line():
    res = {"cmd": ["swanctl", "--load-all"], "rc": 1, "msg": "non-zero return code", "stdout": SWANCTL_OK,
           "stderr": SWANCTL_WARNINGS + "loading connection 'gw' failed: duplicate name\n"}
    assert task_message(res) == "swanctl exited 1: loading connection 'gw' failed: duplicate name"


def test_a_failed_shell_task_is_named_shell():
    res = {"cmd": "nft -f x.nft && conntrack -F", "rc": 1, "stdout": "", "stderr": "x.nft:3:1-4: Error: syntax\n"}
    assert task_message(res) == "shell exited 1: x.nft:3:1-4: Error: syntax"


def test_a_failed_module_task_keeps_ansibles_message():
    assert task_message({"msg": "softether-vpnserver is not installed on gw1"}) == \
        "softether-vpnserver is not installed on gw1"


def test_a_command_task_with_warnings_and_exit_0_is_reported_ok_and_the_failure_line_names_the_host():
    import io
    out = io.StringIO()
    progress = Progress("lab-up", stream=out)
    ok = {"cmd": ["swanctl", "--load-all"], "rc": 0, "changed": True, "stdout": SWANCTL_OK,
          "stderr": SWANCTL_WARNINGS}
    progress({"event": "runner_on_ok", "event_data": {"host": "client", "task": "Load connections", "res": ok}})
    failed = {**ok, "rc": 1, "stderr": SWANCTL_WARNINGS + "loading connection 'gw' failed: duplicate name\n"}
    progress({"event": "runner_on_failed", "event_data": {"host": "gw1", "task": "Load connections",
                                                          "role": "strongswan", "res": failed}})
    assert [(t.host, t.status) for t in progress.tasks] == [("client", "changed"), ("gw1", "failed")]
    assert progress.tasks[1].message == "swanctl exited 1: loading connection 'gw' failed: duplicate name"
    lines = out.getvalue().splitlines()
    assert "gw1" in lines[-2] and "strongswan : Load connections" in lines[-2]
    assert lines[-1].strip() == "swanctl exited 1: loading connection 'gw' failed: duplicate name"
