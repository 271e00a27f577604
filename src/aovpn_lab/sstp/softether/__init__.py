"""A lab SSTP gateway from Debian 12's ``softether-vpnserver``, one per network namespace.

Split along its nouns:

- :mod:`.binary` the binary fix (Debian's build never answers ``SSTP_DUPLEX_POST``):
  a patched copy of ``vpnserver`` in the lab folder; the system's files are never written.
- :mod:`.cfg` a reader/writer for ``vpn_server.config``; :mod:`.sha0` the hash its admin
  password is stored with; :mod:`.server_config` what the lab writes into it before
  start (certificate of any key type, listeners, phone-home off).
- :mod:`.settings` what the gateway serves, and the vpncmd batch that configures it.
- :mod:`.instance` the instance: supervised by :mod:`aovpn_lab.service` (entry
  ``softether`` of profiles/daemons.yml: the private mounts its compiled-in paths need).
- :mod:`.cli` ``python -m aovpn_lab.sstp.softether up|down|status`` for the role.

    >>> len(PATCH_BYTES), PATCH_OFFSET == 0x3a00f, PATCH_BYTES[-3:] == b"\\xcc" * 3
    (65, True, True)
    >>> SoftEtherSettings(users={"alice": "x"}).login("alice")
    'alice@LAB'
"""
from __future__ import annotations

from ...service.process import ProcessId
from ...service.process import is_zombie as _is_zombie
from ...service.process import ppid as _ppid
from .binary import (
    EXPECTED_VERSION,
    ORIGINAL_BYTES,
    ORIGINAL_SHA256,
    PACKAGE,
    PATCH_ASM,
    PATCH_BYTES,
    PATCH_OFFSET,
    PATCHED_SHA256,
    SYSTEM_BINARY,
    SYSTEM_HAMCORE,
    PreparedBinary,
    _sha256,
    assemble_patch,
    installed_version,
    patch_bytes,
    prepare_binary,
)
from .cfg import CfgFolder, parse_cfg, write_cfg
from .cli import PASSWORD_ENV, PASSWORD_ENV_PREFIX, build_parser, main, users_from_env
from .errors import SoftEtherError
from .instance import ADMIN_SECRET, STATE_FILE, SYSTEM_VPNCMD, SoftEtherInstance
from .server_config import (
    DEFAULT_GLOBAL_PARAMS,
    DEFAULT_SERVER_CONFIGURATION,
    apply_server_settings,
    load_pem_pair,
    write_chain,
)
from .settings import Command, SoftEtherSettings, check_vpncmd_output, redact, vpncmd_batch
from .sha0 import sha0

__all__ = [
    "ADMIN_SECRET", "DEFAULT_GLOBAL_PARAMS", "DEFAULT_SERVER_CONFIGURATION", "EXPECTED_VERSION",
    "ORIGINAL_BYTES", "ORIGINAL_SHA256", "PACKAGE", "PASSWORD_ENV", "PASSWORD_ENV_PREFIX", "PATCHED_SHA256",
    "PATCH_ASM", "PATCH_BYTES", "PATCH_OFFSET", "STATE_FILE", "SYSTEM_BINARY", "SYSTEM_HAMCORE",
    "SYSTEM_VPNCMD", "CfgFolder", "Command", "PreparedBinary", "ProcessId", "SoftEtherError",
    "SoftEtherInstance", "SoftEtherSettings", "_is_zombie", "_ppid", "_sha256", "apply_server_settings",
    "assemble_patch", "build_parser", "check_vpncmd_output", "installed_version", "load_pem_pair", "main",
    "parse_cfg", "patch_bytes", "prepare_binary", "redact", "sha0", "users_from_env", "vpncmd_batch",
    "write_cfg", "write_chain",
]
