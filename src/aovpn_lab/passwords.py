"""Passwords handed to the project's service modules through the environment, never argv.

An Ansible role sets one variable per user (PREFIX + the user name upper-cased, other
characters as '_'); a single user may use the plain fallback variable instead.

    >>> passwords_from_env(["alice"], "AOVPN_X_PASSWORD_", "AOVPN_X_PASSWORD", {"AOVPN_X_PASSWORD_ALICE": "s"})
    {'alice': 's'}
"""
from __future__ import annotations

import os
import re
from typing import Mapping

from .errors import AovpnError


def env_name(prefix: str, user: str) -> str:
    return prefix + re.sub(r"[^A-Z0-9]", "_", user.upper())


def passwords_from_env(names: list[str], prefix: str, fallback: str, environ: Mapping[str, str] = os.environ,
                       error: type[AovpnError] = AovpnError) -> dict[str, str]:
    users = {}
    for name in names:
        password = environ.get(env_name(prefix, name))
        if password is None and len(names) == 1:
            password = environ.get(fallback)
        if not password:
            raise error(f"no password for user {name!r} in the environment",
                        hint=f"set {env_name(prefix, name)} (or {fallback} for a single user)")
        users[name] = password
    return users
