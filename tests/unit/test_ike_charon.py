"""The private charon's strongswan.conf comes from the lab role's template, with the same settings."""
from pathlib import Path

from aovpn_lab.ike import profiles
from aovpn_lab.ike.charon import TEMPLATE, config_text


def test_the_private_charon_uses_the_lab_template_and_the_shared_settings(tmp_path: Path):
    settings = profiles.charon_settings()
    text = config_text(tmp_path, settings)
    assert TEMPLATE.is_file()
    assert f"load = {' '.join(settings['plugins'].split())}" in text
    assert f"load = {settings['swanctl_plugins']}" in text            # swanctl's explicit list too
    assert f"socket = unix://{tmp_path}/charon.vici" in text and f"path = {tmp_path}/charon.log" in text
    assert f"retransmit_tries = {settings['retransmit']['tries']}" in text
    assert "block_threshold" not in text and "eap-radius.conf" not in text   # gateway-only settings


def test_neither_list_names_a_plugin_of_the_extra_plugins_package():
    # curve25519, chapoly, ctr, ccm, test-vectors, ... come from libstrongswan-extra-plugins, which
    # setup does not install: naming one would make charon's behaviour depend on the machine.
    settings = profiles.charon_settings()
    extra = {"curve25519", "chapoly", "ctr", "ccm", "cmac", "test-vectors", "ldap", "pkcs11", "rdrand",
             "gcrypt", "af-alg", "curl"}
    assert not extra & set(settings["plugins"].split())
    assert not extra & set(settings["swanctl_plugins"].split())
