import argparse
import sys
import types
from pathlib import Path

import pytest

from aovpn_lab.audit import collect, command

DATA = Path(__file__).resolve().parents[1] / "data" / "rras"
SECRET = "s3cret-Pa55word!"


def parser():
    p = argparse.ArgumentParser(prog="aovpn-lab")
    p.add_argument("--inventory", "-i", default="inventories/lab")
    sub = p.add_subparsers(dest="command", required=True)
    command.register(sub)
    return p


def test_the_out_of_the_box_recording_exits_1_and_lists_the_fixes(capsys):
    args = parser().parse_args(["audit", "--from", str(DATA / "out-of-the-box")])
    assert args.func(args) == command.EXIT_FAILED
    out = capsys.readouterr().out
    assert "FAIL  ikev2-server-fragmentation" in out
    assert "fix: New-ItemProperty" in out


def test_the_hardened_recording_exits_0_and_prints_json(capsys):
    args = parser().parse_args(["audit", "--from", str(DATA / "hardened"), "--json"])
    assert args.func(args) == command.EXIT_OK
    assert '"findings"' in capsys.readouterr().out


def test_a_folder_that_does_not_exist_is_one_line_and_exit_2(capsys, tmp_path):
    args = parser().parse_args(["audit", "--from", str(tmp_path / "nope")])
    assert args.func(args) == command.EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such folder of recorded outputs" in err[0]


def test_inventory_after_the_subcommand_overrides_the_global_one():
    args = parser().parse_args(["audit", "--inventory", "inv.yml", "--from", "x"])
    assert args.inventory == "inv.yml"
    assert parser().parse_args(["-i", "g.yml", "audit", "--from", "x"]).inventory == "g.yml"


# ------------------------------------------------------------- live source, a fake pypsrp


class Host:
    name = "rras1"
    address = "198.51.100.11"

    def __init__(self, **extra):
        self.vars = {"ansible_user": "CORP\\aovpn-audit", "ansible_password": SECRET, **extra}

    def var(self, key, default=None):
        return self.vars.get(key, default)


class ConnectionRefused(OSError):
    """What requests raises when nothing listens (requests.exceptions.ConnectionError is an OSError)."""


@pytest.fixture
def fake_pypsrp(monkeypatch):
    exceptions = types.ModuleType("pypsrp.exceptions")

    class WinRMError(Exception):
        pass

    class AuthenticationError(WinRMError):
        pass

    exceptions.WinRMError, exceptions.AuthenticationError = WinRMError, AuthenticationError
    pkg = types.ModuleType("pypsrp")
    pkg.exceptions = exceptions
    monkeypatch.setitem(sys.modules, "pypsrp", pkg)
    monkeypatch.setitem(sys.modules, "pypsrp.exceptions", exceptions)
    monkeypatch.setitem(sys.modules, "requests", None)   # as where requests is absent: OSError is enough
    return exceptions


class Streams:
    def __init__(self, errors=()):
        self.error = list(errors)


class Record:
    def __init__(self, fq_error, text):
        self.fq_error, self._text = fq_error, text

    def __str__(self):
        return self._text


def client_raising(exc):
    class Client:
        def execute_ps(self, script):
            raise exc
    return lambda conn: Client()


def one_line(exc_info):
    text = str(exc_info.value)
    assert "\n" not in text and SECRET not in text
    return text


def test_an_unreachable_winrm_is_one_line_naming_host_address_and_step(fake_pypsrp):
    with pytest.raises(collect.TargetError) as e:
        collect.live(Host(), client_factory=client_raising(ConnectionRefused("refused")))
    text = one_line(e)
    assert text.startswith("rras1: cannot reach WinRM at 198.51.100.11:5986 (step: connect)")
    assert "Enable-PSRemoting" in text


def test_refused_credentials_are_one_line_without_the_password(fake_pypsrp):
    with pytest.raises(collect.TargetError) as e:
        collect.live(Host(ansible_port=5985, ansible_psrp_protocol="http"),
                     client_factory=client_raising(fake_pypsrp.AuthenticationError(f"bad {SECRET}")))
    text = one_line(e)
    assert "rras1: WinRM at 198.51.100.11:5985 refused the credentials of ansible_user (step: authenticate" in text


def test_a_server_without_the_remoteaccess_cmdlets_is_one_line_with_the_install_fix(fake_pypsrp):
    class Client:
        def execute_ps(self, script):
            if script.startswith("Get-RemoteAccess"):
                return "", Streams([Record("CommandNotFoundException", "The term 'Get-RemoteAccess' is not "
                                                                       "recognized")]), True
            return "", Streams(), False
    with pytest.raises(collect.TargetError) as e:
        collect.live(Host(), client_factory=lambda conn: Client())
    text = one_line(e)
    assert text.startswith("rras1: Get-RemoteAccess is not a command on this server (step: remote-access)")
    assert "Install-WindowsFeature" in text


def test_a_command_that_errors_otherwise_is_not_read(fake_pypsrp):
    class Client:
        def execute_ps(self, script):
            if script.startswith("$out = netsh"):
                return "", Streams([Record("netsh nps show np exited with status 1", "exited 1")]), True
            return "A : 1\n", Streams(), False
    readings = collect.live(Host(), client_factory=lambda conn: Client())
    assert readings["nps-policies"].text is None and "exited 1" in readings["nps-policies"].problem
    assert readings["vpn-auth-protocol"].text == "A : 1\n"


def test_missing_credentials_stop_before_connecting(fake_pypsrp):
    host = Host()
    del host.vars["ansible_password"]
    with pytest.raises(collect.TargetError, match=r"rras1: no ansible_user/ansible_password .*\(step: credentials\)"):
        collect.live(host, client_factory=client_raising(AssertionError("must not connect")))


def test_the_connection_takes_ansibles_psrp_variables_and_never_shows_the_password():
    conn = collect.connection(Host(ansible_psrp_cert_validation="ignore", ansible_psrp_auth="ntlm"))
    assert (conn.port, conn.scheme, conn.auth, conn.cert_validation) == (5986, "https", "ntlm", False)
    assert SECRET not in repr(conn) and SECRET not in str(conn)


def test_without_pypsrp_the_audit_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pypsrp", None)
    monkeypatch.setitem(sys.modules, "pypsrp.client", None)
    with pytest.raises(collect.TargetError, match="pip install pypsrp"):
        collect.live(Host())


def test_the_cli_prints_a_live_failure_as_one_line_and_exits_2(fake_pypsrp, monkeypatch, capsys):
    monkeypatch.setattr(command, "_inventory_host", lambda args: Host())
    monkeypatch.setattr(collect, "_client", client_raising(ConnectionRefused("refused")))
    args = parser().parse_args(["audit", "--host", "rras1"])
    assert args.func(args) == command.EXIT_ERROR
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "cannot reach WinRM" in lines[0]
    assert SECRET not in captured.err + captured.out
