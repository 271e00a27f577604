"""The lab ocserv without starting it: settings, the rendered config, the password file,
the PEM pair check, passwords from the environment and the command line's errors."""
from __future__ import annotations

import datetime
import json
import os
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aovpn_lab.tlsvpn import ocserv as oc


def _pem_pair(tmp_path, name="leaf"):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vpn.example.net")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path



# -- settings and config ---------------------------------------------------------------------

def test_config_has_own_paths_pool_routes_and_no_dns():
    s = oc.OcservSettings(users={"alice": "pw"}, port=4443, routes=["198.51.100.0/24"])
    text = oc.render_config(s, "/srv/inst")
    lines = text.splitlines()
    assert 'auth = "plain[passwd=/srv/inst/ocpasswd]"' in lines
    for key in ("socket-file = /srv/inst/ocserv.sock", "pid-file = /srv/inst/ocserv.pid",
                "server-cert = /srv/inst/server-cert.pem", "server-key = /srv/inst/server-key.pem",
                "tcp-port = 4443", "udp-port = 4443", "ipv4-network = 198.19.3.0",
                "ipv4-netmask = 255.255.255.0", "route = 198.19.3.0/255.255.255.0",
                "route = 198.51.100.0/255.255.255.0", "use-occtl = false", "max-ban-score = 0"):
        assert key in lines, key
    assert not any(l.startswith(("dns", "default-domain", "chroot-dir", "listen-host")) for l in lines)
    assert "route = default" not in text
    # TLS 1.2 and newer only, as the posture scan requires
    assert '-VERS-TLS1.0:-VERS-TLS1.1' in text and "password" not in text.lower().replace("passwd", "")


def test_config_without_udp_and_with_a_listen_address():
    s = oc.OcservSettings(users={"a": "b"}, port=443, udp=False, listen_host="203.0.113.231",
                          pool="198.19.3.0/25")
    lines = oc.render_config(s, "/x").splitlines()
    assert "listen-host = 203.0.113.231" in lines and "tcp-port = 443" in lines
    assert not any(l.startswith("udp-port") for l in lines)
    assert "ipv4-netmask = 255.255.255.128" in lines and s.ping_target == "198.19.3.1"


def test_settings_repr_never_shows_passwords():
    s = oc.OcservSettings(users={"alice": "Very-Secret-1"})
    assert "Very-Secret-1" not in repr(s) and "alice" in repr(s)


@pytest.mark.parametrize("kwargs, message", [
    ({"users": {}}, "no users"),
    ({"users": {"bad name": "x"}}, "user name"),
    ({"users": {"a": ""}}, "empty"),
    ({"users": {"a": "x\ny"}}, "line breaks"),
    ({"users": {"a": "x"}, "port": 0}, "out of range"),
    ({"users": {"a": "x"}, "pool": "192.168.1.0/24"}, "192.168"),
    ({"users": {"a": "x"}, "pool": "198.19.3.0/31"}, "too small"),
    ({"users": {"a": "x"}, "pool": "nope"}, "pool"),
    ({"users": {"a": "x"}, "routes": ["0.0.0.0/0"]}, "default route"),
    ({"users": {"a": "x"}, "listen_host": "gw1"}, "not an IP"),
    ({"users": {"a": "x"}, "tls_priorities": 'NORMAL"\nx'}, "priority"),
])
def test_settings_validation(kwargs, message):
    with pytest.raises(oc.OcservError, match=message):
        oc.OcservSettings(**kwargs).validate()


# -- password file -----------------------------------------------------------------------------

def test_password_file_hashes_and_keeps_unchanged_hashes():
    first = oc.password_file({"alice": "pw-one", "bob": "pw-two"})
    lines = first.splitlines()
    assert [l.split(":")[0] for l in lines] == ["alice", "bob"]
    assert all(l.split(":")[1] == "*" and l.split(":")[2].startswith("$5$") for l in lines)
    assert "pw-one" not in first and "pw-two" not in first
    again = oc.password_file({"alice": "pw-one", "bob": "pw-two"}, first)
    assert again == first  # same salt kept: no restart for an unchanged password
    changed = oc.password_file({"alice": "pw-one", "bob": "new"}, first)
    assert changed.splitlines()[0] == lines[0] and changed.splitlines()[1] != lines[1]
    # the hash is what ocserv's crypt(3) checks: verify it the way openssl computes it
    salt = lines[0].split("$")[2]
    res = subprocess.run(["openssl", "passwd", "-5", "-salt", salt, "-stdin"], input="pw-one\n",
                         capture_output=True, text=True, check=True)
    assert res.stdout.strip() == lines[0].split(":")[2]


# -- PEM pair and environment ------------------------------------------------------------------

def test_pem_pair_check(tmp_path):
    cert, key = _pem_pair(tmp_path)
    _, other_key = _pem_pair(tmp_path, "other")
    data, _, sha = oc.check_pem_pair(cert, key)
    assert data.startswith(b"-----BEGIN CERTIFICATE-----") and len(sha) == 64
    with pytest.raises(oc.OcservError, match="does not belong"):
        oc.check_pem_pair(cert, other_key)
    with pytest.raises(oc.OcservError, match="no PEM certificate"):
        oc.check_pem_pair(key, key)
    with pytest.raises(oc.OcservError, match="cannot read"):
        oc.check_pem_pair(tmp_path / "missing.pem", key)


def test_users_from_env():
    env = {"AOVPN_TLSVPN_PASSWORD_ALICE": "a1", "AOVPN_TLSVPN_PASSWORD_BOB_X": "b1",
           "AOVPN_TLSVPN_PASSWORD": "single"}
    assert oc.users_from_env(["alice", "bob.x"], env) == {"alice": "a1", "bob.x": "b1"}
    assert oc.users_from_env(["carol"], env) == {"carol": "single"}
    with pytest.raises(oc.OcservError, match="AOVPN_TLSVPN_PASSWORD_CAROL"):
        oc.users_from_env(["carol", "alice"], env)


# -- instance without a namespace ----------------------------------------------------------------

def test_down_and_status_without_state_do_nothing(tmp_path):
    inst = oc.OcservInstance(tmp_path / "none")
    assert inst.down() == {"changed": False, "stopped": [], "killed": [],
                           "state_dir": str(tmp_path / "none")}
    assert inst.status()["running"] is False and inst.pids() == []


def test_a_recorded_pid_that_is_not_ours_is_never_signalled(tmp_path):
    # PID 1 with a made-up start time: recorded, but not the process we started
    (tmp_path / oc.STATE_FILE).write_text(json.dumps(
        {"netns": "hxt-s", "main": {"pid": 1, "start_ticks": 1, "exe_dev": 0, "exe_ino": 0}}))
    inst = oc.OcservInstance(tmp_path)
    assert not inst.is_running()
    assert inst.down()["stopped"] == []


def test_up_needs_an_existing_namespace(tmp_path):
    cert, key = _pem_pair(tmp_path)
    inst = oc.OcservInstance(tmp_path / "inst", "hxt-absent")
    with pytest.raises(oc.OcservError, match="does not exist"):
        inst.up(oc.OcservSettings(users={"a": "b"}), cert, key)


def test_cli_up_error_is_json_and_never_prints_the_password(tmp_path, capsys, monkeypatch):
    cert, key = _pem_pair(tmp_path)
    monkeypatch.setenv("AOVPN_TLSVPN_PASSWORD_ALICE", "Do-Not-Print-1")
    code = oc.main(["up", "--netns", "hxt-absent", "--state", str(tmp_path / "i"), "--cert", str(cert),
                    "--key", str(key), "--user", "alice", "--port", "4443"])
    out = capsys.readouterr()
    assert code == 1 and json.loads(out.out)["failed"] is True
    assert "Do-Not-Print-1" not in out.out + out.err


def test_cli_missing_password(tmp_path, capsys, monkeypatch):
    for name in list(os.environ):
        if name.startswith("AOVPN_TLSVPN_PASSWORD"):
            monkeypatch.delenv(name)
    code = oc.main(["up", "--netns", "x", "--state", str(tmp_path), "--cert", "c", "--key", "k",
                    "--user", "alice"])
    assert code == 1 and "AOVPN_TLSVPN_PASSWORD_ALICE" in json.loads(capsys.readouterr().out)["msg"]


def test_state_dir_parents_must_be_searchable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    inst = oc.OcservInstance(locked / "inst", "hxt-s")
    with pytest.raises(oc.OcservError, match="not searchable"):
        inst._prepare_dir()
