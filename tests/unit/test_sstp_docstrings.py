"""The runnable examples in the SSTP modules' docstrings must keep running."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "aovpn_lab.sstp.errors",
    "aovpn_lab.sstp.messages",
    "aovpn_lab.sstp.mschapv2",
    "aovpn_lab.sstp.mppe",
    "aovpn_lab.sstp.binding",
    "aovpn_lab.sstp.ppp",
    "aovpn_lab.sstp.ppp.framing",
    "aovpn_lab.sstp.ppp.events",
    "aovpn_lab.sstp.ppp.lcp",
    "aovpn_lab.sstp.ppp.ipcp",
    "aovpn_lab.sstp.ppp.auth",
    "aovpn_lab.sstp.ppp.session",
    "aovpn_lab.sstp.handshake",
    "aovpn_lab.sstp.client",
    "aovpn_lab.sstp.transport",
    "aovpn_lab.sstp.probe",
    "aovpn_lab.sstp.command",
    "aovpn_lab.sstp.refserver",
    "aovpn_lab.sstp.softether",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no runnable example"
    assert result.failed == 0
