"""aovpn_lab.certs.command: `certs inspect` registered on a fresh argparse parser."""
from __future__ import annotations

import argparse
import json

import pytest

from aovpn_lab.certs import command
from aovpn_lab.certs.pki import PkiFiles, issue_pki

GW, MACHINE, USER = "vpn.example.net", "client.example.net", "alice"


@pytest.fixture(scope="session")
def small(tmp_path_factory) -> PkiFiles:
    out = tmp_path_factory.getbasetemp() / "certs-session-small"  # shared with the other modules
    return issue_pki("small", out, gateways=[GW], machines=[MACHINE], users=[USER])


@pytest.fixture(scope="session")
def large(tmp_path_factory) -> PkiFiles:
    out = tmp_path_factory.getbasetemp() / "certs-session-large"
    return issue_pki("large", out, gateways=[GW], machines=[MACHINE], users=[USER])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aovpn-lab")
    sub = p.add_subparsers(dest="command", required=True)
    command.register(sub)
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    assert callable(args.func)
    return args.func(args)


def test_good_chain_exits_0(small, capsys):
    assert run(["certs", "inspect", str(small.entity(GW).cert), str(small.ca), "--dial-name", GW]) == 0
    out = capsys.readouterr().out
    assert "Result: PASS" in out and GW in out


def test_large_chain_passes_with_fragmentation_warning(large, capsys):
    assert run(["certs", "inspect", str(large.entity(GW).fullchain), "--dial-name", GW, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["needs_ike_fragmentation"] is True and data["ip_fragments"] == 5
    assert data["certificates"][0]["source"] == str(large.entity(GW).fullchain)


def test_failed_requirement_exits_1(small, capsys):
    # a user certificate offered as the SSTP server certificate: no Server Authentication, wrong name
    rc = run(["certs", "inspect", str(small.entity(USER).cert), "--role", "sstp-server", "--dial-name", GW])
    assert rc == 1
    out = capsys.readouterr().out
    assert "eku-server-auth-missing" in out and "name-mismatch" in out and "Result: FAIL" in out


def test_wrong_dial_name_exits_1(small, capsys):
    assert run(["certs", "inspect", str(small.entity(GW).cert), "--dial-name", "vpn2.example.net"]) == 1
    assert "name-mismatch" in capsys.readouterr().out


def test_client_role(small, capsys):
    assert run(["certs", "inspect", str(small.entity(MACHINE).cert), "--role", "client"]) == 0
    assert run(["certs", "inspect", str(small.entity(GW).cert), "--role", "client"]) == 1
    assert "eku-client-auth-missing" in capsys.readouterr().out


def test_bad_input_exits_2_with_one_line_naming_the_file(small, tmp_path, capsys):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert run(["certs", "inspect", str(small.entity(GW).cert), str(junk)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "\n" not in err and str(junk) in err and "expected" in err
    assert run(["certs", "inspect", str(small.entity(GW).key)]) == 2
    err = capsys.readouterr().err
    assert "PRIVATE KEY, not a certificate" in err and "MII" not in err
    assert run(["certs", "inspect", str(tmp_path / "missing.pem")]) == 2
    assert "missing.pem" in capsys.readouterr().err


def test_mtu_option_changes_the_prediction(small, capsys):
    assert run(["certs", "inspect", str(small.entity(GW).cert), "--mtu", "600", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mtu"] == 600 and data["ip_fragments"] == 2 and data["needs_ike_fragmentation"]


@pytest.mark.parametrize(
    "argv",
    [
        ["certs"],  # no subcommand
        ["certs", "inspect"],  # no file
        ["certs", "inspect", "x.pem", "--role", "radius"],
        ["certs", "inspect", "x.pem", "--mtu", "abc"],
        ["certs", "inspect", "x.pem", "--mtu", "100"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_help_text(capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["certs", "inspect", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for needle in ("--dial-name", "--role", "ikev2-server", "sstp-server", "--mtu", "--json", "exit status",
                   "Server Authentication", "IKE_AUTH"):
        assert needle in out, needle
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    assert "certs" in capsys.readouterr().out
