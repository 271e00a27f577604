"""aovpn_lab.radius.server without starting anything: files, secrets, the command line."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from aovpn_lab.errors import AovpnError
from aovpn_lab.radius import server
from aovpn_lab.radius.config import RadiusClient, RadiusConfig, Secret

SECRET = "unit-secret-Hk3"


def make_cfg(tmp_path: Path, **kw) -> RadiusConfig:
    for n in ("ca.pem", "int.pem", "rad.pem", "rad.key"):
        if not (tmp_path / n).exists():
            (tmp_path / n).write_text(f"-----BEGIN CERTIFICATE-----\n{n}\n-----END CERTIFICATE-----\n")
    return RadiusConfig(listen="198.51.100.242", ca_files=[tmp_path / "ca.pem", tmp_path / "int.pem"],
                        cert_file=tmp_path / "rad.pem", key_file=tmp_path / "rad.key",
                        clients=[RadiusClient("gw", "198.51.100.241", Secret(SECRET))], **kw)


def test_write_config_modes_and_bundle(tmp_path):
    rad = server.FreeRadius(tmp_path / "state")
    fp = rad.write_config(make_cfg(tmp_path))
    p = rad.paths
    assert p.state.stat().st_mode & 0o777 == 0o700 and p.raddb.stat().st_mode & 0o777 == 0o700
    assert (p.raddb / "clients.conf").stat().st_mode & 0o777 == 0o600
    assert (p.raddb / "radiusd.conf").stat().st_mode & 0o777 == 0o600
    assert p.ca_bundle.read_text().count("BEGIN CERTIFICATE") == 2
    described = (p.state / "config.json").read_text()
    assert SECRET not in described and json.loads(described)["clients"][0]["secret"] == "***"
    assert fp == rad.write_config(make_cfg(tmp_path))
    (tmp_path / "rad.pem").write_text("re-issued")
    assert fp != rad.write_config(make_cfg(tmp_path))  # a new certificate means a restart


def test_argv_and_pid_checks(tmp_path):
    rad = server.FreeRadius(tmp_path / "s", netns="hxr-a")
    assert rad.argv() == ["ip", "netns", "exec", "hxr-a", server.FREERADIUS, "-f", "-d", str(rad.paths.raddb)]
    assert rad.pid() is None
    rad.paths.state.mkdir()
    rad.paths.pidfile.write_text(f"{os.getpid()}\n")  # alive, but not a FreeRADIUS of this folder
    assert rad.pid() is None and not rad.running
    assert rad.stop() is False  # never signals a PID that is not ours
    assert server.FreeRadius(tmp_path / "s").status()["running"] is False


def test_read_secret_file_and_env(tmp_path, monkeypatch):
    f = tmp_path / "secret"
    f.write_text(SECRET + "\n")
    os.chmod(f, 0o600)
    assert server.read_secret(str(f)).reveal() == SECRET
    os.chmod(f, 0o640)
    with pytest.raises(AovpnError) as err:
        server.read_secret(str(f))
    assert "chmod 600" in str(err.value) and SECRET not in str(err.value)
    monkeypatch.setenv("MY_RADIUS", SECRET)
    assert server.read_secret(None, "MY_RADIUS").reveal() == SECRET
    monkeypatch.delenv("AOVPN_RADIUS_SECRET", raising=False)
    with pytest.raises(AovpnError):
        server.read_secret(None)


def test_make_secret_file_is_idempotent(tmp_path):
    f = tmp_path / "d" / "radius.secret"
    first = server.make_secret_file(f)
    assert first["changed"] and f.stat().st_mode & 0o777 == 0o600 and len(f.read_text().strip()) >= 24
    again = server.make_secret_file(f)
    assert not again["changed"] and again["fingerprint"] == first["fingerprint"]
    assert f.read_text().strip() not in json.dumps(again)


def test_make_secret_file_writes_a_given_secret_only_when_it_differs(tmp_path):
    f = tmp_path / "d" / "radius.secret"
    server.make_secret_file(f)  # a random one first, as a lab without a vault gets
    given = server.make_secret_file(f, value=Secret(SECRET))
    assert given["changed"] and f.read_text() == SECRET + "\n" and f.stat().st_mode & 0o777 == 0o600
    assert given["fingerprint"] == Secret(SECRET).fingerprint() and SECRET not in json.dumps(given)
    assert not server.make_secret_file(f, value=Secret(SECRET))["changed"]


def test_gateway_conf_written_private(tmp_path):
    out = tmp_path / "gw" / "eap-radius.conf"
    r = server.write_gateway_conf(out, {"rad": "198.51.100.242"}, Secret(SECRET))
    assert r["changed"] and out.stat().st_mode & 0o777 == 0o600 and SECRET in out.read_text()
    assert SECRET not in json.dumps(r)
    assert not server.write_gateway_conf(out, {"rad": "198.51.100.242"}, Secret(SECRET))["changed"]


def test_cli_prints_json_and_hides_secret(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AOVPN_RADIUS_SECRET", SECRET)
    out = tmp_path / "eap-radius.conf"
    assert server.main(["gateway-conf", "--server", "rad=198.51.100.242", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed)["changed"] and SECRET not in printed
    assert server.main(["gateway-conf", "--server", "rad=not-an-address", "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert json.loads(printed)["failed"] and SECRET not in printed
    with pytest.raises(SystemExit):
        server.main(["up", "--state", str(tmp_path), "--secret", SECRET])  # no such option: argv stays clean


def test_up_refuses_missing_certificates(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AOVPN_RADIUS_SECRET", SECRET)
    rc = server.main(["up", "--state", str(tmp_path / "s"), "--listen", "198.51.100.242", "--ca",
                      str(tmp_path / "nope.pem"), "--cert", str(tmp_path / "c"), "--key", str(tmp_path / "k"),
                      "--client", "gw=198.51.100.241"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and "does not exist" in out["msg"]


@pytest.mark.skipif(not os.path.exists(server.FREERADIUS), reason="freeradius is not installed")
def test_rendered_tree_passes_freeradius_check(tmp_path):
    from aovpn_lab.certs.pki import issue_pki
    pki = issue_pki("small", tmp_path / "pki", gateways=["radius.example.net"], machines=[], users=[])
    rad = pki.entity("radius.example.net")
    cfg = RadiusConfig(listen="198.51.100.242", ca_files=[pki.ca, pki.intermediates], cert_file=rad.fullchain,
                       key_file=rad.key, clients=[RadiusClient("gw", "198.51.100.241", Secret(SECRET))])
    inst = server.FreeRadius(tmp_path / "state")
    inst.write_config(cfg)
    inst.check_config()  # raises TargetError with FreeRADIUS's own error lines otherwise
    bad = server.FreeRadius(tmp_path / "bad")
    bad.write_config(RadiusConfig(listen="198.51.100.242", ca_files=[pki.ca], cert_file=tmp_path / "missing.pem",
                                  key_file=rad.key, clients=cfg.clients))
    with pytest.raises(Exception) as err:
        bad.check_config()
    assert SECRET not in str(err.value)
    shutil.rmtree(tmp_path / "pki")
