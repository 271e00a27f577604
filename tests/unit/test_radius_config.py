"""aovpn_lab.radius.config: the FreeRADIUS tree and the gateway's eap-radius settings."""
from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest

from aovpn_lab.radius.config import (
    InstancePaths,
    RadiusClient,
    RadiusConfig,
    Secret,
    fingerprint,
    quote,
    render,
    strongswan_eap_radius,
)

SECRET = "Zq8-very-secret-value"


def cfg(**kw) -> RadiusConfig:
    base = {"listen": "198.51.100.242", "ca_files": [Path("/pki/ca.pem")],
            "cert_file": Path("/pki/radius.example.net.fullchain.pem"),
            "key_file": Path("/pki/radius.example.net.key.pem"),
            "clients": [RadiusClient("gw1", "198.51.100.241", Secret(SECRET))]}
    base.update(kw)
    return RadiusConfig(**base)


def test_secret_is_never_shown():
    s = Secret(SECRET)
    assert SECRET not in repr(s) and SECRET not in str(s) and SECRET not in f"{s}" and SECRET not in f"{s!r:>40}"
    assert s.reveal() == SECRET
    assert s == Secret(SECRET) and s != Secret("other")
    assert len(s.fingerprint()) == 8 and s.fingerprint() not in SECRET
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_secret_absent_from_repr_describe_and_logging(caplog):
    c = cfg()
    assert SECRET not in repr(c) and SECRET not in repr(c.clients)
    assert SECRET not in json.dumps(c.describe())
    assert c.describe()["clients"] == [{"name": "gw1", "address": "198.51.100.241", "secret": "***"}]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("aovpn.test").debug("config %r %s %s", c, c, c.clients[0].secret)
    assert SECRET not in caplog.text and "***" in caplog.text


@pytest.mark.parametrize("bad", ["", "two\nlines", "tab\there", "x" * 129])
def test_unusable_secrets_are_refused_without_echo(bad):
    with pytest.raises(ValueError) as err:
        Secret(bad)
    assert not bad or bad not in str(err.value)


def test_client_secret_plain_string_is_wrapped():
    c = RadiusClient("gw", "203.0.113.0/28", SECRET)
    assert isinstance(c.secret, Secret) and SECRET not in repr(c)


def test_render_layout_and_only_clients_conf_holds_the_secret():
    files = render(cfg(), Path("/state/rad"))
    assert sorted(files) == ["clients.conf", "radiusd.conf"]
    assert SECRET not in files["radiusd.conf"]
    assert f'secret = "{SECRET}"' in files["clients.conf"]
    conf = files["radiusd.conf"]
    paths = InstancePaths(Path("/state/rad"))
    for line in (f'raddbdir = "{paths.raddb}"', f'logdir = "{paths.log_dir}"', f'run_dir = "{paths.run_dir}"',
                 f'file = "{paths.log}"', "$INCLUDE clients.conf", "default_eap_type = tls",
                 'ca_file = "/pki/ca.pem"', 'certificate_file = "/pki/radius.example.net.fullchain.pem"',
                 'private_key_file = "/pki/radius.example.net.key.pem"', 'tls_max_version = "1.2"',
                 "ipaddr = 198.51.100.242", "port = 1812", "status_server = yes", "reject_delay = 0",
                 "auth_badpass = no", "auth_goodpass = no"):
        assert line in conf, line
    # EAP-TLS only: no other EAP methods, no password modules, no proxying
    for absent in ("md5 {", "peap", "ttls", "mschap", "pap", "/etc/freeradius"):
        assert absent not in conf.lower().replace("proxy_requests = no", ""), absent
    assert "proxy_requests = no" in conf
    assert "require_message_authenticator = yes" in files["clients.conf"]
    assert "ipaddr = 198.51.100.241" in files["clients.conf"]


def test_several_ca_files_become_one_bundle():
    files = render(cfg(ca_files=[Path("/pki/ca.pem"), Path("/pki/intermediates.pem")]), Path("/s"))
    assert f'ca_file = "{InstancePaths(Path("/s")).ca_bundle}"' in files["radiusd.conf"]
    assert cfg(ca_files="/pki/ca.pem").ca_files == [Path("/pki/ca.pem")]


def test_quote_escapes_for_freeradius():
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    files = render(cfg(clients=[RadiusClient("gw", "198.51.100.241", Secret('p"w\\x'))]), Path("/s"))
    assert 'secret = "p\\"w\\\\x"' in files["clients.conf"]


@pytest.mark.parametrize("kw", [{"listen": "not-an-ip"}, {"port": 0}, {"tls_max_version": "2.0"},
                                {"fragment_size": 10}, {"ca_files": []},
                                {"clients": [RadiusClient("a", "198.51.100.1", Secret("x")),
                                             RadiusClient("a", "198.51.100.2", Secret("y"))]}])
def test_invalid_configs(kw):
    with pytest.raises(ValueError):
        cfg(**kw)


@pytest.mark.parametrize("name,address", [("bad name", "198.51.100.1"), ("gw", "nowhere")])
def test_invalid_clients(name, address):
    with pytest.raises(ValueError):
        RadiusClient(name, address, Secret("x"))


def test_unusable_paths_are_refused():
    with pytest.raises(ValueError):
        render(cfg(cert_file=Path('/pki/we"ird.pem')), Path("/s"))
    with pytest.raises(ValueError):
        render(cfg(), Path("relative"))


def test_fingerprint_follows_config_and_file_content(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("one")
    a = render(cfg(), tmp_path)
    fp = fingerprint(a, [ca])
    assert fp == fingerprint(render(cfg(), tmp_path), [ca])
    assert fp != fingerprint(render(cfg(clients=[RadiusClient("gw1", "198.51.100.241", Secret("new"))]), tmp_path),
                             [ca])
    ca.write_text("re-issued")
    assert fp != fingerprint(a, [ca])
    assert SECRET not in fp


def test_strongswan_eap_radius_fragment():
    text = strongswan_eap_radius({"rad": ("198.51.100.242", Secret('s"q'))}, retransmit_tries=3)
    assert text.startswith("eap-radius {")
    for line in ("retransmit_tries = 3", "retransmit_timeout = 0.5", "rad {", "address = 198.51.100.242",
                 "auth_port = 1812", 'secret = "s\\"q"'):
        assert line in text, line
    assert text.count("{") == text.count("}")
    with pytest.raises(ValueError):
        strongswan_eap_radius({"rad": ("radius.example.net", Secret("x"))})
