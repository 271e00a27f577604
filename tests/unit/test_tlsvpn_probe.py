"""The openconnect probe without a server: cause classification from openconnect 9.01's
real output, the vpnc-script, and the process handling against a fake openconnect
(password on stdin only, stopped by PID, SIGKILL when SIGTERM is ignored)."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from aovpn_lab.tlsvpn import probe as pr
from aovpn_lab.tlsvpn.script import STATUS_ENV, VPNC_SCRIPT, write_script

# Captured from openconnect 9.01 against ocserv 1.1.6 in the lab namespaces.
OUT_REFUSED = """POST https://vpn.example.net:4445/
Failed to connect to 203.0.113.231:4445: Connection refused
Failed to connect to host vpn.example.net
Failed to open HTTPS connection to vpn.example.net
Failed to complete authentication"""
OUT_UNTRUSTED = """POST https://vpn.example.net:4443/
Connected to 203.0.113.231:4443
SSL negotiation with vpn.example.net
Server certificate verify failed: signer not found

Certificate from VPN server "vpn.example.net" failed verification.
Reason: signer not found
To trust this server in future, perhaps add this to your command line:
    --servercert pin-sha256:TgpAjySh7WS9lolvshM9c05o0P7Z2tAMLA9OkCGq6GU=
SSL connection failure: Error in the certificate.
Failed to open HTTPS connection to vpn.example.net
Failed to complete authentication"""
OUT_NAME = OUT_UNTRUSTED.replace("signer not found", "certificate does not match hostname")
OUT_BADPW = """POST https://vpn.example.net:4443/
Connected to 203.0.113.231:4443
SSL negotiation with vpn.example.net
Connected to HTTPS on vpn.example.net with ciphersuite (TLS1.3)-(ECDHE-SECP256R1)-(ECDSA-SECP256R1-SHA256)-(AES-256-GCM)
XML POST enabled
Please enter your username.
POST https://vpn.example.net:4443/auth
Please enter your password.
POST https://vpn.example.net:4443/auth
Login failed.
Please enter your password.
Password:
***
User input required in non-interactive mode
Failed to complete authentication"""
OUT_TLS = """POST https://vpn.example.net:4443/
Connected to 203.0.113.231:4443
SSL negotiation with vpn.example.net
SSL connection failure: The TLS connection was non-properly terminated.
Failed to open HTTPS connection to vpn.example.net
Failed to complete authentication"""
OUT_CONNECT_REJECTED = OUT_BADPW.split("Login failed.")[0] + """Got CONNECT response: HTTP/1.1 503 Service Unavailable
Creating SSL connection failed"""


@pytest.mark.parametrize("output, timed_out, cause, detail", [
    (OUT_REFUSED, False, "tcp-443-blocked", "Connection refused"),
    (OUT_UNTRUSTED, False, "cert-untrusted", "signer not found"),
    (OUT_NAME, False, "cert-untrusted", "certificate does not match hostname"),
    (OUT_BADPW, False, "auth-failed", "Login failed"),
    (OUT_TLS, False, "tls-failed", "Failed to complete authentication"),
    (OUT_CONNECT_REJECTED, False, "protocol-error", "Creating SSL connection failed"),
    ("POST https://vpn.example.net:443/", True, "tcp-443-blocked",
     "no answer to the TCP SYN before the deadline"),
    ("POST https://x/\nConnected to 203.0.113.231:443\nSSL negotiation with x", True, "timeout",
     "TLS handshake did not finish before the deadline"),
    (OUT_BADPW.split("Login failed.")[0], True, "timeout", "no tunnel before the deadline"),
])
def test_classify(output, timed_out, cause, detail):
    assert pr.classify(output, connected=False, timed_out=timed_out) == (cause, detail)
    assert cause in pr.CAUSES


def test_classify_connected_wins():
    assert pr.classify(OUT_BADPW, connected=True, timed_out=False) == ("none", "")


# -- the vpnc-script ------------------------------------------------------------------------------

def test_script_is_valid_sh_and_never_touches_dns_or_the_default_route(tmp_path):
    path = write_script(tmp_path)
    assert os.stat(path).st_mode & 0o777 == 0o700
    subprocess.run(["sh", "-n", str(path)], check=True)
    code = "\n".join(re.sub(r"\s+#\s.*$", "", l) for l in VPNC_SCRIPT.splitlines()
                     if not l.lstrip().startswith("#"))
    assert "resolv" not in code and "default" not in code and "0.0.0.0" not in code
    assert "INTERNAL_IP4_DNS" not in code and "CISCO_DEF_DOMAIN" not in code


def _run_script(tmp_path, **env):
    path = write_script(tmp_path)
    status = tmp_path / "status"
    base = {"PATH": os.environ["PATH"], STATUS_ENV: str(status)}
    res = subprocess.run([str(path)], env=dict(base, **env), capture_output=True, text=True, timeout=10,
                         check=False)
    return res, (status.read_text() if status.exists() else "")


def test_script_disconnect_and_other_reasons_only_report(tmp_path):
    res, status = _run_script(tmp_path, reason="disconnect", TUNDEV="oc-test")
    assert res.returncode == 0 and status == "reason=disconnect\n"
    (tmp_path / "b").mkdir()
    res, status = _run_script(tmp_path / "b", reason="pre-init")
    assert res.returncode == 0 and status == ""


def test_script_connect_without_an_address_fails_cleanly(tmp_path):
    res, status = _run_script(tmp_path, reason="connect")
    assert res.returncode == 1 and "reason=error" in status


# -- the process handling, against a fake openconnect ---------------------------------------------

FAKE = """#!/bin/sh
printf '%s\\n' "$@" > "{argv}"
read pw
printf '%s' "$pw" > "{stdin}"
{body}
"""


def _fake(tmp_path, monkeypatch, body):
    fake = tmp_path / "fake-openconnect"
    fake.write_text(FAKE.format(argv=tmp_path / "argv", stdin=tmp_path / "stdin", body=body))
    fake.chmod(0o755)
    monkeypatch.setattr(pr, "OPENCONNECT", str(fake))
    return fake


CONNECTING = """echo 'POST https://vpn.example.net:4443/'
echo 'Connected to 203.0.113.231:4443'
echo 'Connected to HTTPS on vpn.example.net with ciphersuite (TLS1.3)-(X)-(Y)'
printf 'reason=connect\\nip=198.19.3.77\\ntundev=x\\nmtu=1434\\nroutes=198.19.3.0/24\\n' >> "$AOVPN_TLSVPN_STATUS"
"""


def test_connected_fake_is_stopped_with_sigterm_and_never_sees_the_password_in_argv(tmp_path, monkeypatch):
    _fake(tmp_path, monkeypatch, CONNECTING + "trap 'exit 0' TERM\nwhile :; do sleep 0.05; done")
    r = pr.probe_openconnect("203.0.113.231", 4443, user="alice", password="Stdin-Only-1",
                             ca_file="/x/ca.pem", servername="vpn.example.net", timeout=5)
    assert (r.connected, r.cause, r.ip, r.mtu, r.routes) == (True, "none", "198.19.3.77", 1434,
                                                              ["198.19.3.0/24"])
    assert r.stopped == "SIGTERM" and r.tls == "(TLS1.3)-(X)-(Y)" and r.tcp_ms is not None
    argv = (tmp_path / "argv").read_text().splitlines()
    assert (tmp_path / "stdin").read_text() == "Stdin-Only-1"
    assert "Stdin-Only-1" not in " ".join(argv)
    assert {"--passwd-on-stdin", "--non-inter", "--no-system-trust", "--protocol=anyconnect"} <= set(argv)
    assert argv[argv.index("--resolve") + 1] == "vpn.example.net:203.0.113.231"
    assert argv[argv.index("--cafile") + 1] == "/x/ca.pem"
    assert argv[-1] == "https://vpn.example.net:4443/"
    assert "Stdin-Only-1" not in json.dumps(r.to_json()) and "Stdin-Only-1" not in repr(r)


def test_password_echoed_by_the_client_is_redacted(tmp_path, monkeypatch):
    _fake(tmp_path, monkeypatch, 'echo "Connected to HTTPS on x"\necho "Password: $pw"\necho "Login failed."\nexit 1')
    r = pr.probe_openconnect("203.0.113.231", 443, user="alice", password="Echoed-Secret-2", timeout=5)
    assert r.cause == "auth-failed" and r.stopped == "exited"
    assert "Echoed-Secret-2" not in json.dumps(r.to_json())
    assert any("Password: ***" in line for line in r.log)


def test_a_client_ignoring_sigterm_is_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(pr, "STOP_GRACE_UNCONNECTED", 0.3)
    _fake(tmp_path, monkeypatch, "trap '' TERM\nwhile :; do sleep 0.05; done")
    r = pr.probe_openconnect("203.0.113.231", 443, user="alice", password="x", timeout=0.5)
    assert (r.connected, r.cause, r.stopped) == (False, "tcp-443-blocked", "SIGKILL")
    assert r.elapsed_ms < 3000


def test_bad_arguments():
    with pytest.raises(ValueError):
        pr.probe_openconnect("h", user="u", password="a\nb")
    with pytest.raises(ValueError):
        pr.probe_openconnect("h", user="u", password="p", timeout=0)


def test_missing_openconnect(monkeypatch):
    monkeypatch.setattr(pr, "OPENCONNECT", "/nonexistent/openconnect")
    r = pr.probe_openconnect("203.0.113.231", 443, user="u", password="p", timeout=1)
    assert (r.connected, r.cause) == (False, "protocol-error") and "not installed" in r.detail
