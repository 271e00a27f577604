"""`aovpn-lab probe sstp` as cli.py will call it: add_arguments(parser) + run(args)."""
from __future__ import annotations

import argparse
import json
import socket

import pytest
from test_sstp_probe import NAME, PASSWORD, pki  # noqa: F401  (fixture)

from aovpn_lab.sstp import command
from aovpn_lab.sstp.refserver import ReferenceServerThread, RefServerConfig


def parse(*argv):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("text, expected", [
    ("vpn.example.net", ("vpn.example.net", 443)),
    ("vpn.example.net:8443", ("vpn.example.net", 8443)),
    ("203.0.113.10", ("203.0.113.10", 443)),
    ("[2001:db8::1]:4443", ("2001:db8::1", 4443)),
    ("[2001:db8::1]", ("2001:db8::1", 443)),
    ("2001:db8::1", ("2001:db8::1", 443)),
])
def test_parse_server(text, expected):
    assert command.parse_server(text) == expected


@pytest.mark.parametrize("text", ["", "host:0", "host:70000", "host:https", "[::1", "[::1]x", ":443"])
def test_parse_server_refuses(text):
    with pytest.raises(command.BadInput):
        command.parse_server(text)


def test_password_is_required_one_way_or_the_other():
    with pytest.raises(SystemExit):
        parse("--server", "h", "--user", "u")
    with pytest.raises(SystemExit):
        parse("--server", "h", "--user", "u", "--password", "p", "--password-env", "X")


@pytest.mark.parametrize("extra, message", [
    (["--password-env", "AOVPN_TEST_UNSET_VARIABLE"], "is not set"),
    (["--password", "p", "--timeout", "0"], "--timeout"),
    (["--password", "p", "--ca", "/nonexistent/ca.pem"], "no such file"),
    (["--password", "p", "--ping", "not-an-ip"], "IPv4"),
    (["--password", "p", "--netns", "hxs-no-such-namespace"], "no such network namespace"),
    (["--password", ""], "empty"),
])
def test_bad_input_exits_2(extra, message, capsys, monkeypatch):
    monkeypatch.delenv("AOVPN_TEST_UNSET_VARIABLE", raising=False)
    assert command.run(parse("--server", "h", "--user", "u", *extra)) == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def server(pki):  # noqa: F811
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    config = RefServerConfig(users={"alice": PASSWORD}, cert_der=b"")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    leaf = x509.load_pem_x509_certificate((pki["dir"] / "leaf.pem").read_bytes())
    config.cert_der = leaf.public_bytes(serialization.Encoding.DER)
    with ReferenceServerThread(sock, str(pki["dir"] / "leaf.pem"), str(pki["dir"] / "leaf.key"),
                               config) as running:
        yield running.listener.getsockname()[1]


def test_connected_exits_0_with_json_and_no_password(server, pki, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SSTP_TEST_PW", PASSWORD)
    args = parse("--server", f"127.0.0.1:{server}", "--user", "alice", "--password-env",
                 "SSTP_TEST_PW", "--ca", str(pki["dir"] / "ca.pem"), "--sni", NAME,
                 "--ping", "198.19.3.1", "--timeout", "5", "--json")
    assert command.run(args) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["connected"] and data["cause"] == "none" and data["ping_ok"]
    assert PASSWORD not in out and args.password is None


def test_not_connected_exits_1_with_a_summary(server, pki, capsys):  # noqa: F811
    args = parse("--server", f"127.0.0.1:{server}", "--user", "alice", "--password", "Wr0ng-Pw",
                 "--ca", str(pki["dir"] / "ca.pem"), "--sni", NAME, "--timeout", "5")
    assert command.run(args) == 1
    out = capsys.readouterr().out
    assert "FAILED, cause auth-failed" in out and "Wr0ng-Pw" not in out
    assert args.password is None  # dropped from the namespace once read


def test_the_parsers_auth_choices_are_the_probes():
    from aovpn_lab.sstp import probe
    assert sorted(command.AUTH_NAMES) == sorted(probe.AUTH_CHOICES)
