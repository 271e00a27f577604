"""What the lab writes into vpn_server.config before start: what vpncmd cannot set.

An ECDSA certificate (``ServerCertSet`` refuses anything but RSA), the listeners, DDNS,
NAT-T and keep-alive phone-home off, and the admin password (so that the admin port is
never open without one); the intermediates go to ``chain_certs``.
"""
from __future__ import annotations

from pathlib import Path

from .cfg import CfgFolder, parse_cfg, write_cfg
from .errors import SoftEtherError
from .sha0 import sha0


# What this build writes into a fresh vpn_server.config (`vpnserver execsvc` with no
# config), minus the generated secrets. A seeded config must carry them: a missing key
# reads as 0/false/empty, not as the default (an empty UsernameHubSeparator, for one,
# turns "alice@LAB" into a user name that does not exist).
DEFAULT_SERVER_CONFIGURATION = """\
uint64 AutoDeleteCheckDiskFreeSpaceMin 104857600
uint AutoDeleteCheckIntervalSecs 300
uint AutoSaveConfigSpan 300
bool BackupConfigOnlyWhenModified true
string CipherName ~DEFAULT~
uint CurrentBuild 9674
uint DhParamBits 2048
bool DisableCoreDumpOnUnix false
bool DisableDeadLockCheck false
bool DisableDosProtection false
bool DisableGetHostNameWhenAcceptTcp false
bool DisableIPsecAggressiveMode false
bool DisableIPv6Listener false
bool DisableJsonRpcWebApi false
bool DisableNatTraversal false
bool DisableSessionReconnect false
bool DontBackupConfig false
bool EnableVpnAzure false
bool EnableVpnOverDns false
bool EnableVpnOverIcmp false
string KeepConnectHost keepalive.softether.org
uint KeepConnectInterval 50
uint KeepConnectPort 80
uint KeepConnectProtocol 1
string ListenIP 0.0.0.0
uint64 LoggerMaxLogSize 1073741823
uint MaxConcurrentDnsClientThreads 512
uint MaxConnectionsPerIP 256
uint MaxUnestablishedConnections 1000
bool NoHighPriorityProcess false
bool NoLinuxArpFilter false
bool NoSendSignature false
bool SaveDebugLog false
uint ServerLogSwitchType 4
uint ServerType 0
bool StrictSyslogDatetimeFormat false
bool Tls_Disable1_0 false
bool Tls_Disable1_1 false
bool Tls_Disable1_2 false
bool UseKeepConnect true
string UsernameHubSeparator @
bool UseWebTimePage false
bool UseWebUI false
"""
DEFAULT_GLOBAL_PARAMS = """\
uint FIFO_BUDGET 10240000
uint HUB_ARP_SEND_INTERVAL 5000
uint IP_TABLE_EXPIRE_TIME 60000
uint IP_TABLE_EXPIRE_TIME_DHCP 300000
uint MAC_TABLE_EXPIRE_TIME 600000
uint MAX_BUFFERING_PACKET_SIZE 2560000
uint MAX_HUB_LINKS 1024
uint MAX_IP_TABLES 65536
uint MAX_MAC_TABLES 65536
uint MAX_SEND_SOCKET_QUEUE_NUM 128
uint MAX_SEND_SOCKET_QUEUE_SIZE 2560000
uint MAX_STORED_QUEUE_NUM 1024
uint MEM_FIFO_REALLOC_MEM_SIZE 655360
uint MIN_SEND_SOCKET_QUEUE_SIZE 320000
uint QUEUE_BUDGET 2048
uint SELECT_TIME 256
uint SELECT_TIME_FOR_NAT 30
uint STORM_CHECK_SPAN 500
uint STORM_DISCARD_VALUE_END 1024
uint STORM_DISCARD_VALUE_START 3
"""


def _defaults(folder: CfgFolder, table: str) -> None:
    for line in table.splitlines():
        kind, name, value = line.split(None, 2)
        folder.setdefault(kind, name, value)


def apply_server_settings(text: str | None, *, cert_der: bytes, key_der: bytes,
                          ports: list[int], admin_password: str | None = None) -> str:
    """What vpncmd cannot set: certificate (any key type), listeners, phone-home off;
    and the admin password, so that the admin port is never open without one."""
    import base64

    root = parse_cfg(text) if text else CfgFolder("")
    top = root.folder("root")
    top.folder("DDnsClient").set("bool", "Disabled", "true")
    listeners = top.folder("ListenerList")
    listeners.items = []
    for index, port in enumerate(sorted(set(ports))):
        entry = listeners.folder(f"Listener{index}")
        entry.set("bool", "DisableDos", "false")
        entry.set("bool", "Enabled", "true")
        entry.set("uint", "Port", str(port))
    server = top.folder("ServerConfiguration")
    _defaults(server, DEFAULT_SERVER_CONFIGURATION)
    _defaults(server.folder("GlobalParams"), DEFAULT_GLOBAL_PARAMS)
    for name, value in (("DisableNatTraversal", "true"), ("UseKeepConnect", "false"),
                        ("EnableVpnAzure", "false"), ("EnableVpnOverDns", "false"),
                        ("EnableVpnOverIcmp", "false"), ("DisableJsonRpcWebApi", "true"),
                        ("UseWebUI", "false"), ("UseWebTimePage", "false"),
                        ("DisableIPv6Listener", "true")):
        server.set("bool", name, value)
    server.set("string", "PortsUDP", "$")  # no UDP listeners (OpenVPN/IPsec stay off)
    server.set("byte", "ServerCert", base64.b64encode(cert_der).decode())
    server.set("byte", "ServerKey", base64.b64encode(key_der).decode())
    if admin_password is not None:
        server.set("byte", "HashedPassword", base64.b64encode(sha0(admin_password.encode())).decode())
    return write_cfg(root)


def load_pem_pair(cert_path: Path, key_path: Path,
                  chain_path: Path | None = None) -> tuple[bytes, bytes, list[bytes]]:
    """DER of the leaf, of its private key (traditional format, as SoftEther stores it)
    and of the intermediates to send: whatever follows the leaf in ``cert_path`` (a
    fullchain file) plus ``chain_path``, leaf-side first."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        certs = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
        if chain_path is not None:
            certs += x509.load_pem_x509_certificates(Path(chain_path).read_bytes())
    except (OSError, ValueError) as exc:
        raise SoftEtherError(f"cannot read certificate {cert_path}: {exc}",
                             hint="pass the server certificate as PEM") from None
    cert, chain = certs[0], certs[1:]
    try:
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SoftEtherError(f"cannot read private key {key_path}: {exc}",
                             hint="pass an unencrypted PEM private key") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise SoftEtherError(f"{key_path}: only RSA and ECDSA keys work with SoftEther")
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if cert.public_key().public_bytes(enc, pub) != key.public_key().public_bytes(enc, pub):
        raise SoftEtherError(f"{key_path} is not the key of {cert_path}",
                             hint="pass the matching certificate and key")
    key_der = key.private_bytes(enc, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    seen = {cert.public_bytes(enc)}
    chain_der = []
    for extra in chain:
        der = extra.public_bytes(enc)
        if der not in seen and extra.subject != extra.issuer:  # no duplicates, no roots
            seen.add(der)
            chain_der.append(der)
    return cert.public_bytes(enc), key_der, chain_der


CHAIN_DIR = "chain_certs"  # <db dir>/chain_certs: vpnserver sends these after the leaf
CHAIN_PREFIX = "aovpn-"


def write_chain(db_dir: Path, chain_der: list[bytes]) -> None:
    import base64

    folder = Path(db_dir) / CHAIN_DIR
    folder.mkdir(exist_ok=True)
    for old in folder.glob(CHAIN_PREFIX + "*"):
        old.unlink()
    for index, der in enumerate(chain_der, 1):
        body = base64.encodebytes(der).decode().replace("\n", "")
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
        (folder / f"{CHAIN_PREFIX}{index:02d}.cer").write_text(pem)
