"""What the audit runs on the server, and where its output comes from.

COMMANDS is the one list: a name (also the file name of its recorded output) and the
PowerShell it runs. Two sources give a :class:`Reading` per name: ``recorded(DIR)``
(``DIR/<name>.txt``, as `--from DIR` reads) and ``live(host)`` over PSRP (pypsrp, the
library Ansible's psrp connection uses), with the host's Ansible connection variables.

    >>> sorted(commands())[:3]
    ['certificates', 'firewall', 'nps-policies']
    >>> commands()["registry-remoteaccess-parameters-ikev2"]
    "Get-ItemProperty -Path 'HKLM:\\\\SYSTEM\\\\CurrentControlSet\\\\Services\\\\RemoteAccess\\\\Parameters\\\\Ikev2' -ErrorAction SilentlyContinue | Format-List *"
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import AovpnError, TargetError
from . import catalogue

SCHANNEL = r"HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols"
# The network adapter class: one subkey per WAN Miniport (PPTP, L2TP, SSTP, IKEv2, ...).
WAN_MINIPORTS = r"HKLM:\SYSTEM\CurrentControlSet\Control\Class\{4d36e972-e325-11ce-bfc1-08002be10318}"

# Commands whose name is fixed; the registry keys come from profiles/rras.yml (registry_commands).
# A native command (netsh) is judged by its exit status: a non-zero one becomes an error record.
FIXED: dict[str, str] = {
    "remote-access": "Get-RemoteAccess | Format-List *",
    "vpn-server-configuration": "Get-VpnServerConfiguration | Format-List *",
    "vpn-auth-protocol": "Get-VpnAuthProtocol | Format-List *",
    # NotAfter in UTC, sortable: the default rendering follows the server's locale.
    # Sha256: SstpSvc's SHA256CertificateHash names a certificate by it; Thumbprint is SHA-1.
    "certificates": (
        r"Get-ChildItem -Path Cert:\LocalMachine\My | Format-List Subject,Thumbprint,"
        "@{n='NotAfter';e={$_.NotAfter.ToUniversalTime().ToString('s') + 'Z'}},"
        "EnhancedKeyUsageList,DnsNameList,"
        "@{n='Sha256';e={([Security.Cryptography.SHA256]::Create().ComputeHash($_.RawData) | "
        "ForEach-Object { $_.ToString('X2') }) -join ''}}"),
    "schannel": (f"Get-ChildItem -Path '{SCHANNEL}' -Recurse | Get-ItemProperty | "
                 "Format-List PSPath,Enabled,DisabledByDefault"),
    "wan-miniports": (f"Get-ChildItem -Path '{WAN_MINIPORTS}' -ErrorAction SilentlyContinue | Get-ItemProperty | "
                      "Where-Object { $_.DriverDesc -like 'WAN Miniport (*' } | "
                      "Format-List PSPath,DriverDesc,EnableForRas,EnableForRouting,WanEndpoints"),
    "firewall": (
        "Get-NetFirewallRule -Direction Inbound -Enabled True -Action Allow | ForEach-Object { "
        "$port = $_ | Get-NetFirewallPortFilter; "
        "[pscustomobject]@{DisplayName = $_.DisplayName; Protocol = $port.Protocol; LocalPort = $port.LocalPort} "
        "} | Format-List DisplayName,Protocol,LocalPort"),
    "nps-policies": ("$out = netsh nps show np; "
                     "if ($LASTEXITCODE -ne 0) { throw \"netsh nps show np exited with status $LASTEXITCODE\" }; $out"),
}


def registry_name(key: str) -> str:
    """The command name of a registry key: its path below Services or Control, in lower case.

    >>> registry_name(r"HKLM:\\SYSTEM\\CurrentControlSet\\Services\\IKEEXT\\Parameters")
    'registry-ikeext-parameters'
    """
    tail = re.split(r"\\(?:Services|Control)\\", key, maxsplit=1)[-1]
    return "registry-" + re.sub(r"[^a-z0-9]+", "-", tail.lower()).strip("-")


def registry_commands(cat: catalogue.Catalogue) -> dict[str, str]:
    keys = dict.fromkeys(r.key for r in cat.registry)
    return {registry_name(k): f"Get-ItemProperty -Path '{k}' -ErrorAction SilentlyContinue | Format-List *"
            for k in keys}


def commands(cat: catalogue.Catalogue | None = None) -> dict[str, str]:
    return {**FIXED, **registry_commands(cat or catalogue.load())}


@dataclass(frozen=True)
class Reading:
    """One command's output; ``text`` None when it could not be read (``problem`` says why)."""
    name: str
    command: str
    text: str | None
    problem: str | None = None
    origin: str = ""


# ------------------------------------------------------------------ recorded outputs


def recorded(folder: str | Path, cat: catalogue.Catalogue | None = None) -> dict[str, Reading]:
    folder = Path(folder)
    if not folder.is_dir():
        raise AovpnError(f"{folder}: no such folder of recorded outputs",
                         hint="give --from a folder with one <command name>.txt per command (see docs/audit.md)")
    out = {}
    for name, command in commands(cat).items():
        path = folder / f"{name}.txt"
        try:
            out[name] = Reading(name, command, path.read_text(encoding="utf-8-sig"), origin=str(path))
        except FileNotFoundError:
            out[name] = Reading(name, command, None, f"{path} is missing", origin=str(path))
        except (OSError, UnicodeDecodeError) as exc:
            out[name] = Reading(name, command, None, f"{path}: {exc}", origin=str(path))
    return out


# ------------------------------------------------------------------ live, over PSRP

DEFAULT_PORTS = {"https": 5986, "http": 5985}
ROLE_FIX = ("install the Remote Access role with its PowerShell module: Install-WindowsFeature "
            "DirectAccess-VPN,Routing,RSAT-RemoteAccess-PowerShell -IncludeManagementTools")
NPS_FIX = "install NPS: Install-WindowsFeature NPAS -IncludeManagementTools"


@dataclass(frozen=True)
class Connection:
    """Where and how to reach WinRM, from Ansible's psrp/winrm connection variables.
    The password is kept out of repr: nothing prints it."""
    host: str
    address: str
    port: int
    scheme: str
    auth: str
    cert_validation: bool
    user: str | None
    password: str | None = None

    def __repr__(self) -> str:
        return f"Connection({self.host}, {self.scheme}://{self.address}:{self.port}, auth={self.auth})"

    @property
    def where(self) -> str:
        return f"{self.address}:{self.port}"


def connection(host: Any) -> Connection:
    """The host's ansible_host/ansible_port/ansible_user/ansible_password (vaulted) and
    ansible_psrp_* (or ansible_winrm_*) variables, as Ansible's connections read them."""
    v = host.var
    scheme = str(v("ansible_psrp_protocol") or v("ansible_winrm_scheme") or "https").lower()
    if scheme not in DEFAULT_PORTS:
        raise AovpnError(f"{host.name}: ansible_psrp_protocol '{scheme}' is not http or https",
                         hint="set ansible_psrp_protocol: https (port 5986) or http (5985)")
    validation = str(v("ansible_psrp_cert_validation") or v("ansible_winrm_server_cert_validation") or "validate")
    address = host.address or host.name
    return Connection(
        host=host.name, address=str(address), port=int(v("ansible_port") or DEFAULT_PORTS[scheme]), scheme=scheme,
        auth=str(v("ansible_psrp_auth") or v("ansible_winrm_transport") or "negotiate"),
        cert_validation=validation.lower() != "ignore",
        user=v("ansible_user"), password=None if v("ansible_password") is None else str(v("ansible_password")))


def _client(conn: Connection) -> Any:
    try:
        from pypsrp.client import Client
    except ImportError:
        raise TargetError(f"{conn.host}: the Python package pypsrp is not installed (step: connect)",
                          hint="pip install pypsrp") from None
    return Client(conn.address, port=conn.port, username=conn.user, password=conn.password,
                  ssl=conn.scheme == "https", auth=conn.auth, cert_validation=conn.cert_validation,
                  connection_timeout=15, operation_timeout=60)


def _transport_errors() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(unreachable, authentication, other WinRM) exception classes of pypsrp and requests."""
    from pypsrp.exceptions import AuthenticationError, WinRMError
    try:
        from requests.exceptions import ConnectionError as RequestsConnectionError
        unreachable: tuple[type, ...] = (RequestsConnectionError, OSError)
    except ImportError:
        unreachable = (OSError,)
    return unreachable, (AuthenticationError,), (WinRMError,)


def _error_ids(streams: Any) -> list[tuple[str, str]]:
    out = []
    for record in getattr(streams, "error", None) or []:
        out.append((str(getattr(record, "fq_error", "") or ""), str(record)))
    return out


def live(host: Any, cat: catalogue.Catalogue | None = None,
         client_factory: Callable[[Connection], Any] | None = None) -> dict[str, Reading]:
    """Run every command on ``host``; one clear TargetError for what stops the whole audit
    (no WinRM, wrong credentials, no RemoteAccess cmdlets)."""
    conn = connection(host)
    if not conn.user or conn.password is None:
        raise TargetError(f"{conn.host}: no ansible_user/ansible_password for WinRM (step: credentials)",
                          hint="set ansible_user and a vaulted ansible_password on the host "
                               "(ansible-vault encrypt_string ... --name ansible_password)")
    client = (client_factory or _client)(conn)
    unreachable, auth_failed, winrm = _transport_errors()
    out: dict[str, Reading] = {}
    for name, command in commands(cat).items():
        try:
            text, streams, had_errors = client.execute_ps(command)
        except auth_failed:
            raise TargetError(f"{conn.host}: WinRM at {conn.where} refused the credentials of ansible_user "
                              f"(step: authenticate, {conn.auth})",
                              hint="check ansible_user and the vaulted ansible_password; the account must be an "
                                   "administrator of the server; ansible_psrp_auth may need kerberos or ntlm") from None
        except unreachable:
            raise TargetError(f"{conn.host}: cannot reach WinRM at {conn.where} (step: connect)",
                              hint=f"enable WinRM over {conn.scheme.upper()} on the server (Enable-PSRemoting; a "
                                   f"listener on {conn.port}), open TCP {conn.port} from here, or correct "
                                   "ansible_host/ansible_port/ansible_psrp_protocol") from None
        except winrm as exc:
            code = getattr(exc, "code", None)
            raise TargetError(f"{conn.host}: WinRM at {conn.where} failed"
                              f"{f' with HTTP {code}' if code else ''} (step: {name})",
                              hint="check the WinRM service and its listener (winrm enumerate "
                                   "winrm/config/listener)") from None
        errors = _error_ids(streams) if had_errors else []
        if any(fq.startswith("CommandNotFoundException") for fq, _ in errors):
            cmdlet = command.split()[0] if not command.startswith("$") else "netsh nps"
            raise TargetError(f"{conn.host}: {cmdlet} is not a command on this server (step: {name})",
                              hint=NPS_FIX if name.startswith("nps") else ROLE_FIX)
        if errors:
            out[name] = Reading(name, command, None, f"{name} on {conn.host}: {errors[0][1]}", origin=conn.host)
        else:
            out[name] = Reading(name, command, text, origin=conn.host)
    return out
