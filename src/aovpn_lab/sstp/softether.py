"""A lab SSTP gateway from Debian 12's ``softether-vpnserver``, one per network namespace.

Three parts:

1. **The binary fix.** Debian's build (5.01.9674+git20200806) never answers
   ``SSTP_DUPLEX_POST``: ``ProtoHandleConnection()`` looks the protocol up by name in a
   loop that, on a match, assigns ``impl = container->Impl`` from a NULL ``container``
   instead of ``container = tmp`` (fixed upstream in 5611156c, released in 5.02.5180).
   GCC saw the NULL dereference and compiled the whole lookup into "return false", so
   the 65 bytes at file offset 0x3a00f (virtual address 0x3a00f: the text segment maps
   1:1) loop over ``proto->Containers`` calling ``StrCmp`` and leave on a match *or* on
   the end of the list to the same ``return false`` (0x3a050). :func:`prepare_binary`
   copies the binary and ``hamcore.se2`` into a lab folder, checks the original's
   SHA-256, and overwrites those bytes with :data:`PATCH_ASM` — the loop upstream's C
   describes, keeping the matching container in ``rax`` and jumping to 0x3a0a9, where
   the compiled ``ProtoDetect()`` branch continues with ``container`` in ``rax``
   (``r12 = container; impl = container->Impl; options = container->Options``). Registers:
   ``r15`` = proto, ``rbp`` = protocol name, ``rbx`` = sock (kept: the code after 0x3a0a9
   reads it), ``r12``/``r13`` = scratch (callee-saved, rewritten after 0x3a0a9). The
   system's files are never written.

2. **An instance in a namespace.** The paths are compiled in, so ``vpnserver execsvc``
   runs under ``ip netns exec NS unshare --mount`` with /var/lib/softether,
   /var/log/softether, /run/softether and /tmp bound to the instance's own folders.
   Server-level settings that vpncmd cannot make (an ECDSA certificate: ``ServerCertSet``
   refuses anything but RSA; DDNS, NAT-T and keep-alive phone-home off; the listeners)
   are written into ``vpn_server.config`` before start; the rest goes through
   ``vpncmd localhost:5555 /SERVER /IN:<batch>`` inside the instance's namespaces.
   Processes are tracked by PID (+ start time + executable inode) and only those are
   ever signalled.

3. **A command line** for the Ansible role ``playbooks/roles/softether``::

       AOVPN_SSTP_PASSWORD_ALICE=... python -m aovpn_lab.sstp.softether up \\
           --netns aovpn-sstp --state /var/lib/aovpn-lab/sstp --cert c.pem --key k.pem \\
           --user alice
       python -m aovpn_lab.sstp.softether down --state /var/lib/aovpn-lab/sstp

The patch is data here and can be rebuilt from its source with binutils::

    >>> len(PATCH_BYTES), PATCH_OFFSET == 0x3a00f, PATCH_BYTES[-3:] == b"\\xcc" * 3
    (65, True, True)
    >>> SoftEtherSettings(users={"alice": "x"}).login("alice")
    'alice@LAB'
"""
from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import tool
from ..errors import AovpnError
from ..ike.craft_netns import tcp_open
from ..passwords import passwords_from_env

SYSTEM_BINARY = Path("/usr/libexec/softether/vpnserver/vpnserver")
SYSTEM_HAMCORE = Path("/usr/libexec/softether/vpnserver/hamcore.se2")
SYSTEM_VPNCMD = Path("/usr/libexec/softether/vpncmd/vpncmd")
PACKAGE = "softether-vpnserver"
EXPECTED_VERSION = "5.01.9674+git20200806+8181039+dfsg2-2+b2"
ORIGINAL_SHA256 = "487e51a73f152c9042837975044edd6d11cef4f29eaff2162512f2b897054212"
PATCHED_SHA256 = "e6681352b9826baad6fd064c2d7e8ddbc0f3406975c33f993f747317e7c6cbed"
PATCH_OFFSET = 0x3A00F

# The 65 original bytes (objdump -d -M intel, addresses = file offsets):
#   3a00f mov rax,[rdi+0x8]      ; proto->Containers
#   3a013 xor ebx,ebx            ; i = 0 (clobbers sock: GCC knew every exit returns false)
#   3a015 mov rdx,rax / test rax,rax / jne 3a045 / jmp 3a050
#   3a020 mov rdx,[rdx+0x10] / mov eax,ebx / mov rsi,rbp / mov rax,[rdx+rax*8]
#   3a02d mov rdi,[rax] / call StrCmp(0x16bbd0)
#   3a035 test eax,eax / je 3a050 ; MATCH -> "return false" (impl = NULL->Impl was dropped)
#   3a039 mov rdx,[r15+0x8] / add ebx,1 / test rdx,rdx / je 3a050
#   3a045 cmp ebx,[rdx+0x8] / jb 3a020 ; no match left -> falls to 3a050 "return false"
ORIGINAL_BYTES = bytes.fromhex(
    "488b470831db4889c24885c07528eb3190488b521089d84889ee488b04c2488b38e89b1b1300"
    "85c07417498b570883c3014885d2740b3b5a0872d6660f1f440000"
)

# The replacement (GNU as, Intel syntax; linked at 0x3a00f so the branches resolve):
PATCH_ASM = """\
    .intel_syntax noprefix
    .set FAIL, 0x3a050          # container == NULL: return false
    .set FOUND, 0x3a0a9         # the ProtoDetect() path: mov r12,rax; test rax,rax; ...
    .set STRCMP, 0x16bbd0
    .text
    .globl _start
_start:
    xor r13d, r13d              # i = 0
1:  mov rax, QWORD PTR [r15+0x8]    # list = proto->Containers
    test rax, rax
    je FAIL
    cmp r13d, DWORD PTR [rax+0x8]   # i < LIST_NUM(list)
    jae FAIL
    mov rax, QWORD PTR [rax+0x10]   # list->p
    mov r12, QWORD PTR [rax+r13*8]  # tmp = LIST_DATA(list, i)
    mov rdi, QWORD PTR [r12]        # tmp->Name
    mov rsi, rbp                    # protocol
    call STRCMP
    add r13d, 1
    test eax, eax
    jne 1b
    mov rax, r12                    # container = tmp
    jmp FOUND
"""
PATCH_BYTES = bytes.fromhex(
    "4531ed498b47084885c00f8431000000443b68080f8327000000488b40104e8b24e8498b3c24"
    "4889eee8931b13004183c50185c075cd4c89e0e95c000000"
) + b"\xcc" * 3  # 62 bytes of code, int3 padding (never reached) up to 65

STATE_FILE = "instance.json"
ADMIN_SECRET = "admin.secret"
BIN_DIR = "bin"
MOUNTS = {  # instance folder -> path compiled into vpnserver
    "lib": "/var/lib/softether",
    "log": "/var/log/softether",
    "run": "/run/softether",
    "tmp": "/tmp",
}
INNER_BIN = "/run/aovpn-softether"  # where the lab binary appears inside the mount namespace
PASSWORD_ENV_PREFIX = "AOVPN_SSTP_PASSWORD_"
PASSWORD_ENV = "AOVPN_SSTP_PASSWORD"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SAFE_SECRET = re.compile(r"^[\x21\x23-\x7e]{1,127}$")  # printable, no space, no double quote


class SoftEtherError(AovpnError):
    """The lab SoftEther gateway could not be prepared, started, configured or stopped."""


# ---------------------------------------------------------------------------------------
# 1. the binary


@dataclass(frozen=True)
class PreparedBinary:
    directory: Path
    binary: Path
    sha256: str
    original_sha256: str
    changed: bool


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def installed_version() -> str:
    try:
        res = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", PACKAGE],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    # dpkg-query exits 1 (and prints its error on stderr) when the package is unknown
    return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "not installed"


def patch_bytes(original: bytes) -> bytes:
    """The patched image from the original image (checked byte for byte)."""
    found = hashlib.sha256(original).hexdigest()
    if found != ORIGINAL_SHA256:
        raise SoftEtherError(
            f"{SYSTEM_BINARY} has sha256 {found}, not the {EXPECTED_VERSION} build this patch "
            f"was written for (installed: {PACKAGE} {installed_version()})",
            hint="install Debian 12's softether-vpnserver 5.01.9674+git20200806+8181039+dfsg2-2+b2, "
                 "or use SoftEther 5.02.5180+ which has the fix (no patch needed)")
    window = original[PATCH_OFFSET:PATCH_OFFSET + len(ORIGINAL_BYTES)]
    if window != ORIGINAL_BYTES:  # cannot happen when the hash matched; belt and braces
        raise SoftEtherError(f"unexpected bytes at 0x{PATCH_OFFSET:x}: {window.hex()}")
    patched = original[:PATCH_OFFSET] + PATCH_BYTES + original[PATCH_OFFSET + len(PATCH_BYTES):]
    if hashlib.sha256(patched).hexdigest() != PATCHED_SHA256:
        raise SoftEtherError("the patched image does not have the recorded sha256",
                             hint="PATCH_BYTES and PATCHED_SHA256 disagree: a bug in this module")
    return patched


def prepare_binary(directory: Path, *, source: Path = SYSTEM_BINARY,
                   hamcore: Path = SYSTEM_HAMCORE, patch: bool = True) -> PreparedBinary:
    """Patched ``vpnserver`` + ``hamcore.se2`` in ``directory``; idempotent.

    ``patch=False`` copies the verified original unchanged: only for showing the bug.
    """
    directory = Path(directory)
    wanted = PATCHED_SHA256 if patch else ORIGINAL_SHA256
    target = directory / "vpnserver"
    if not source.exists():
        raise SoftEtherError(f"{source} does not exist",
                             hint="apt-get install --no-install-recommends softether-vpnserver")
    directory.mkdir(parents=True, exist_ok=True)
    changed = False
    if not (target.exists() and _sha256(target) == wanted):
        patched = patch_bytes(source.read_bytes())
        if not patch:
            patched = source.read_bytes()
        tmp = target.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(patched)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
        changed = True
        if _sha256(target) != wanted:
            raise SoftEtherError(f"{target} does not verify after writing it",
                                 hint="check the disk holding the lab state folder")
    hamcore_target = directory / "hamcore.se2"
    real_hamcore = hamcore.resolve()
    if not hamcore_target.exists() or hamcore_target.stat().st_size != real_hamcore.stat().st_size:
        shutil.copyfile(real_hamcore, hamcore_target)
        changed = True
    return PreparedBinary(directory, target, wanted, ORIGINAL_SHA256, changed)


def assemble_patch(workdir: Path | None = None) -> bytes:
    """Rebuild :data:`PATCH_BYTES` from :data:`PATCH_ASM` with binutils (as, ld, objcopy)."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        src, obj, elf, raw = (Path(tmp) / n for n in ("fix.s", "fix.o", "fix.elf", "fix.bin"))
        src.write_text(PATCH_ASM)
        for argv in (["as", "--64", "-o", str(obj), str(src)],
                     ["ld", f"-Ttext=0x{PATCH_OFFSET:x}", "-e", "_start", "-o", str(elf), str(obj)],
                     ["objcopy", "-O", "binary", "-j", ".text", str(elf), str(raw)]):
            tool.run(argv, step="assemble the SoftEther fix", hint="apt-get install binutils").check()
        code = raw.read_bytes()
    if len(code) > len(ORIGINAL_BYTES):
        raise SoftEtherError(f"assembled patch is {len(code)} bytes, the window is 65")
    return code + b"\xcc" * (len(ORIGINAL_BYTES) - len(code))


# ---------------------------------------------------------------------------------------
# vpn_server.config: a tiny reader/writer for SoftEther's "declare NAME { type name value }"


@dataclass
class CfgFolder:
    name: str
    items: list = field(default_factory=list)  # CfgFolder | [type, name, value]

    def folder(self, *path: str) -> CfgFolder:
        here = self
        for name in path:
            found = next((i for i in here.items if isinstance(i, CfgFolder) and i.name == name), None)
            if found is None:
                found = CfgFolder(name)
                here.items.append(found)
            here = found
        return here

    def set(self, kind: str, name: str, value: str) -> None:
        for item in self.items:
            if isinstance(item, list) and item[1] == name:
                item[0], item[2] = kind, value
                return
        self.items.append([kind, name, value])

    def setdefault(self, kind: str, name: str, value: str) -> None:
        if self.get(name) is None:
            self.items.append([kind, name, value])

    def get(self, name: str) -> str | None:
        return next((i[2] for i in self.items if isinstance(i, list) and i[1] == name), None)

    def drop_folder(self, name: str) -> None:
        self.items = [i for i in self.items if not (isinstance(i, CfgFolder) and i.name == name)]


def parse_cfg(text: str) -> CfgFolder:
    root = CfgFolder("")
    stack = [root]
    pending: str | None = None
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "//")):
            continue
        if line.startswith("declare "):
            pending = line.split(None, 1)[1]
        elif line == "{":
            if pending is None:
                raise SoftEtherError(f"vpn_server.config line {number}: '{{' without declare")
            folder = CfgFolder(pending)
            stack[-1].items.append(folder)
            stack.append(folder)
            pending = None
        elif line == "}":
            if len(stack) == 1:
                raise SoftEtherError(f"vpn_server.config line {number}: unbalanced '}}'")
            stack.pop()
        else:
            parts = line.split(None, 2)
            if len(parts) < 2:
                raise SoftEtherError(f"vpn_server.config line {number}: cannot read {line[:60]!r}")
            stack[-1].items.append([parts[0], parts[1], parts[2] if len(parts) > 2 else ""])
    if len(stack) != 1:
        raise SoftEtherError("vpn_server.config: a folder is not closed")
    return root


def write_cfg(root: CfgFolder) -> str:
    lines = ["\ufeff# Software Configuration File",
             "# Written by aovpn_lab.sstp.softether; vpnserver rewrites it on exit.", ""]

    def emit(folder: CfgFolder, depth: int) -> None:
        pad = "\t" * depth
        lines.append(f"{pad}declare {folder.name}")
        lines.append(f"{pad}{{")
        for item in folder.items:
            if isinstance(item, CfgFolder):
                emit(item, depth + 1)
            else:
                lines.append(f"{pad}\t{item[0]} {item[1]} {item[2]}".rstrip())
        lines.append(f"{pad}}}")

    for item in root.items:
        if isinstance(item, CfgFolder):
            emit(item, 0)
    return "\n".join(lines) + "\n"


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


def sha0(data: bytes) -> bytes:
    """SHA-0 (FIPS 180, 1993): how SoftEther stores the admin password (``HashedPassword``).

    SHA-1 without the one-bit rotation in the message schedule; hashlib has no SHA-0.
    Checked against this build: "" -> +WzqGYrR3VYXrAhKPZLGEHcIwO8=.
    """
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    length = len(data) * 8
    data += b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack(">Q", length)

    def rol(x: int, n: int) -> int:
        return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF

    for offset in range(0, len(data), 64):
        w = list(struct.unpack(">16I", data[offset:offset + 64]))
        for i in range(16, 80):
            w.append(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16])  # SHA-1 would rotate here
        a, b, c, d, e = state
        for i in range(80):
            if i < 20:
                f, k = (b & c) | (~b & d), 0x5A827999
            elif i < 40:
                f, k = b ^ c ^ d, 0x6ED9EBA1
            elif i < 60:
                f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
            else:
                f, k = b ^ c ^ d, 0xCA62C1D6
            a, b, c, d, e = (rol(a, 5) + f + e + k + w[i]) & 0xFFFFFFFF, a, rol(b, 30), c, d
        state = [(x + y) & 0xFFFFFFFF for x, y in zip(state, (a, b, c, d, e))]
    return struct.pack(">5I", *state)


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


# ---------------------------------------------------------------------------------------
# 2. the instance


@dataclass(repr=False)
class SoftEtherSettings:
    """What the gateway serves. Passwords stay out of repr, JSON and logs."""

    users: dict[str, str] = field(default_factory=dict)
    hub: str = "LAB"
    port: int = 443
    admin_port: int = 5555
    nat_host: str = "198.19.2.1"
    nat_mask: str = "255.255.255.0"
    dhcp_start: str = "198.19.2.10"
    dhcp_end: str = "198.19.2.200"

    def __repr__(self) -> str:
        return (f"SoftEtherSettings(hub={self.hub!r}, users={sorted(self.users)!r}, port={self.port}, "
                f"nat={self.nat_host}/{self.nat_mask}, dhcp={self.dhcp_start}-{self.dhcp_end})")

    def login(self, user: str) -> str:
        """The name a client authenticates with: SoftEther hub users are user@HUB."""
        return f"{user}@{self.hub}"

    def validate(self) -> None:
        for what, value in [("hub", self.hub), *(("user", u) for u in self.users)]:
            if not _SAFE_NAME.match(value):
                raise SoftEtherError(f"{what} name {value!r} is not usable with vpncmd",
                                     hint="letters, digits, '.', '_', '-' (max 64, no '@')")
        for user, password in self.users.items():
            if not _SAFE_SECRET.match(password or ""):
                raise SoftEtherError(f"the password of user {user!r} is empty or has spaces, "
                                     "quotes or control characters",
                                     hint="use printable ASCII without spaces or '\"'")
        for port in (self.port, self.admin_port):
            if not 1 <= port <= 65535:
                raise SoftEtherError(f"port {port} is out of range")
        try:
            net = ipaddress.ip_network(f"{self.nat_host}/{self.nat_mask}", strict=False)
            start, end = ipaddress.ip_address(self.dhcp_start), ipaddress.ip_address(self.dhcp_end)
        except ValueError as exc:
            raise SoftEtherError(f"SecureNAT addresses: {exc}") from None
        if net.subnet_of(ipaddress.ip_network("192.168.0.0/16")):
            raise SoftEtherError(f"SecureNAT network {net} is a 192.168 range",
                                 hint="use a lab range such as 198.19.2.0/24")
        if not (start in net and end in net and start <= end):
            raise SoftEtherError(f"DHCP pool {start}-{end} is not inside {net}")
        if ipaddress.ip_address(self.nat_host) in (start, end) or start <= ipaddress.ip_address(
                self.nat_host) <= end:
            raise SoftEtherError(f"the SecureNAT host {self.nat_host} is inside the DHCP pool")

    def digest(self) -> str:
        """Changes whenever anything the batch sets changes (passwords only as hashes)."""
        material = json.dumps({
            "hub": self.hub, "port": self.port, "admin": self.admin_port,
            "nat": [self.nat_host, self.nat_mask, self.dhcp_start, self.dhcp_end],
            "users": {u: hashlib.sha256(p.encode()).hexdigest() for u, p in sorted(self.users.items())},
        }, sort_keys=True)
        return hashlib.sha256(material.encode()).hexdigest()


@dataclass
class Command:
    line: str
    ok_codes: frozenset[int] = frozenset()


def vpncmd_batch(settings: SoftEtherSettings, admin_password: str) -> list[Command]:
    """The vpncmd commands that configure the hub, users, SecureNAT and SSTP."""
    s = settings
    hub_password = hashlib.sha256(("hub:" + admin_password).encode()).hexdigest()[:32]
    psk = hashlib.sha256(("psk:" + admin_password).encode()).hexdigest()[:9]
    # The admin password itself is in vpn_server.config (HashedPassword) before start.
    commands = [
        Command(f"HubCreate {s.hub} /PASSWORD:{hub_password}", frozenset({57})),  # exists
        Command(f"Hub {s.hub}"),
    ]
    for user in sorted(s.users):
        commands += [
            Command(f"UserCreate {user} /GROUP:none /REALNAME:none /NOTE:none", frozenset({66})),
            Command(f"UserPasswordSet {user} /PASSWORD:{s.users[user]}"),
        ]
    commands += [
        Command(f"SecureNatHostSet /MAC:none /IP:{s.nat_host} /MASK:{s.nat_mask}"),
        Command(f"DhcpSet /START:{s.dhcp_start} /END:{s.dhcp_end} /MASK:{s.nat_mask} /EXPIRE:7200 "
                f"/GW:{s.nat_host} /DNS:none /DNS2:none /DOMAIN:none /LOG:no"),
        Command("SecureNatEnable"),
        Command("Hub"),
        Command("ProtoOptionsSet SSTP /NAME:Enabled /VALUE:true"),
        Command("ProtoOptionsSet OpenVPN /NAME:Enabled /VALUE:false"),
        Command(f"IPsecEnable /L2TP:no /L2TPRAW:no /ETHERIP:no /PSK:{psk} /DEFAULTHUB:{s.hub}"),
        Command("VpnOverIcmpDnsEnable /ICMP:no /DNS:no"),
        Command("KeepDisable"),
        Command("Flush"),
    ]
    return commands


_PROMPT = re.compile(r"^VPN Server(?:/[^>]*)?>(.*)$")
_ERROR = re.compile(r"Error occurred\. \(Error code: (\d+)\)")


def check_vpncmd_output(output: str, commands: list[Command], secrets_: list[str]) -> list[str]:
    """Per-command errors that are not in the command's ``ok_codes``; redacted text."""
    text = redact(output, secrets_)
    chunks: list[list[str]] = []
    for line in text.splitlines():
        match = _PROMPT.match(line.strip())
        if match and match.group(1).strip():
            chunks.append([match.group(1).strip()])
        elif chunks:
            chunks[-1].append(line)
    problems = []
    if len(chunks) < len(commands):
        tail = " | ".join(l.strip() for l in text.splitlines()[-6:] if l.strip())
        problems.append(f"vpncmd ran {len(chunks)} of {len(commands)} commands: {tail}")
    for command, chunk in zip(commands, chunks):
        body = "\n".join(chunk[1:])
        for code in (int(c) for c in _ERROR.findall(body)):
            if code not in command.ok_codes:
                detail = next((l.strip() for l in chunk[1:] if l.strip() and "Error occurred" not in l), "")
                problems.append(f"`{chunk[0]}` failed with error {code}: {detail}")
        if "It is not possible to specify this parameter" in body or "is an invalid" in body:
            problems.append(f"`{chunk[0]}`: {body.strip().splitlines()[0]}")
    return problems


def redact(text: str, secrets_: list[str]) -> str:
    for secret in sorted((s for s in secrets_ if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return re.sub(r"(/PASSWORD:|ServerPasswordSet )\S+", r"\1***", text)


@dataclass
class ProcessId:
    """A PID plus what makes it ours: its start time and the inode of its executable."""

    pid: int
    start_ticks: int
    exe_dev: int
    exe_ino: int

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        ticks = _start_ticks(pid)
        try:
            exe = os.stat(f"/proc/{pid}/exe")
        except OSError:
            return None
        return cls(pid, ticks, exe.st_dev, exe.st_ino) if ticks is not None else None

    def alive(self) -> bool:
        if _start_ticks(self.pid) != self.start_ticks or _is_zombie(self.pid):
            return False
        try:
            exe = os.stat(f"/proc/{self.pid}/exe")
        except OSError:
            return False
        return (exe.st_dev, exe.st_ino) == (self.exe_dev, self.exe_ino)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces/parentheses: split after the last ')'
    return raw[raw.rindex(")") + 2:].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] in ("Z", "X")


class SoftEtherInstance:
    """One vpnserver in one network namespace, all state under ``state_dir``."""

    def __init__(self, state_dir: Path | str, netns: str | None = None, *,
                 patched: bool = True) -> None:
        self.state_dir = Path(state_dir).resolve()
        self._netns = netns
        self.patched = patched  # False only to demonstrate the unpatched build's silence

    # -- paths and recorded state ----------------------------------------------------

    @property
    def bin_dir(self) -> Path:
        return self.state_dir / BIN_DIR

    @property
    def binary(self) -> Path:
        return self.bin_dir / "vpnserver"

    def folder(self, key: str) -> Path:
        return self.state_dir / key

    @property
    def config_path(self) -> Path:
        return self.folder("lib") / "vpn_server.config"

    def recorded(self) -> dict | None:
        try:
            return json.loads((self.state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None

    @property
    def netns(self) -> str | None:
        if self._netns:
            return self._netns
        state = self.recorded()
        return state.get("netns") if state else None

    def _record(self, data: dict) -> None:
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)

    @staticmethod
    def _owned(entry: dict) -> bool:
        """Is the recorded PID still the process we started (not a reused PID)?"""
        try:
            return ProcessId(**entry).alive()
        except TypeError:
            return False

    def pids(self) -> list[int]:
        state = self.recorded() or {}
        return [e["pid"] for e in state.get("processes", []) if self._owned(e)]

    def is_running(self) -> bool:
        state = self.recorded() or {}
        processes = state.get("processes", [])
        return bool(processes) and all(self._owned(e) for e in processes)

    # -- admin secret ----------------------------------------------------------------

    def admin_password(self) -> str:
        path = self.state_dir / ADMIN_SECRET
        if path.exists():
            return path.read_text().strip()
        secret = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        return secret

    # -- lifecycle -------------------------------------------------------------------

    def up(self, settings: SoftEtherSettings, cert_pem: Path, key_pem: Path,
           *, chain_pem: Path | None = None, start_timeout: float = 20.0) -> dict:
        """Start (or keep) the instance and apply ``settings``; returns a report dict."""
        began = time.monotonic()
        settings.validate()
        netns = self._require_netns()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        for key in MOUNTS:
            self.folder(key).mkdir(exist_ok=True)
        prepared = prepare_binary(self.bin_dir, patch=self.patched)
        cert_der, key_der, chain_der = load_pem_pair(cert_pem, key_pem, chain_pem)
        server_digest = hashlib.sha256(
            cert_der + key_der + b"".join(chain_der)
            + json.dumps([netns, settings.port, settings.admin_port]).encode()
        ).hexdigest()
        state = self.recorded() or {}
        changed = prepared.changed
        restarted = False
        if self.is_running() and (state.get("server_digest") != server_digest or prepared.changed):
            self.down()
            restarted = True
        start_ms = None
        admin = self.admin_password()
        if not self.is_running():
            self._stop_leftovers()
            text = self.config_path.read_text(encoding="utf-8-sig") if self.config_path.exists() else None
            self.config_path.write_text(apply_server_settings(
                text, cert_der=cert_der, key_der=key_der,
                ports=[settings.port, settings.admin_port], admin_password=admin), encoding="utf-8")
            os.chmod(self.config_path, 0o600)
            write_chain(self.folder("lib"), chain_der)
            start_ms = self._start(netns, settings, start_timeout)
            changed = True
            state = self.recorded() or {}
        configure_began = time.monotonic()
        self._vpncmd(vpncmd_batch(settings, admin), admin, list(settings.users.values()),
                     port=settings.admin_port)
        configure_ms = int((time.monotonic() - configure_began) * 1000)
        if state.get("settings_digest") != settings.digest():
            changed = True
        state.update(server_digest=server_digest, settings_digest=settings.digest(),
                     hub=settings.hub, users=sorted(settings.users), port=settings.port,
                     admin_port=settings.admin_port, nat_host=settings.nat_host,
                     dhcp=[settings.dhcp_start, settings.dhcp_end])
        self._record(state)
        return {
            "changed": changed, "restarted": restarted, "netns": netns,
            "state_dir": str(self.state_dir), "pids": self.pids(),
            "binary": str(self.binary), "binary_sha256": prepared.sha256,
            "original_sha256": prepared.original_sha256, "hub": settings.hub,
            "logins": [settings.login(u) for u in sorted(settings.users)],
            "port": settings.port, "nat_host": settings.nat_host,
            "certificate_sha256": hashlib.sha256(cert_der).hexdigest(), "chain": len(chain_der),
            "start_ms": start_ms, "configure_ms": configure_ms,
            "seconds": round(time.monotonic() - began, 3),
        }

    def _require_netns(self) -> str:
        from ..ike.craft_netns import require_netns
        return require_netns(self._netns, SoftEtherError)

    def _mount_script(self) -> str:
        q = shlex.quote
        steps = ["set -e",
                 # A private /run: the pid/ctl files of this instance and nobody else's.
                 "mount -t tmpfs -o mode=0755 aovpn-softether /run",
                 f"mkdir -p /run/softether {INNER_BIN}",
                 f"mount --bind {q(str(self.bin_dir))} {INNER_BIN}"]
        # /tmp last: the state folder itself may live under /tmp.
        for key in ("run", "lib", "log", "tmp"):
            steps.append(f"mount --bind {q(str(self.folder(key)))} {MOUNTS[key]}")
        steps.append(f"exec {INNER_BIN}/vpnserver execsvc")
        return "; ".join(steps)

    def _start(self, netns: str, settings: SoftEtherSettings, timeout: float) -> int:
        for path in (MOUNTS["lib"], MOUNTS["log"]):
            # Mount points only (what the package's own service would create); never written.
            Path(path).mkdir(mode=0o755, parents=True, exist_ok=True)
        for port in (settings.port, settings.admin_port):
            if tcp_open(netns, "127.0.0.1", port, 0.3):
                raise SoftEtherError(f"TCP port {port} in namespace {netns} is already in use",
                                     hint="stop whatever listens there, or choose --port")
        began = time.monotonic()
        with open(self.state_dir / "vpnserver.out", "ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private",
                 "sh", "-c", self._mount_script()],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True)
        watchdog = None
        worker = None
        deadline = began + timeout
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise SoftEtherError(
                    f"vpnserver in {netns} exited with status {code} during start: "
                    f"{self._tail('vpnserver.out')}", hint=f"see {self.state_dir}/vpnserver.out "
                    f"and {self.folder('log')}/server_log")
            if watchdog is None and self._exe_is_ours(proc.pid):
                watchdog = ProcessId.of(proc.pid)
            if watchdog is not None and worker is None:
                worker = self._find_worker(proc.pid)
                if worker is not None:
                    # Recorded at once, so that a failed start can still be stopped by PID.
                    self._record({"netns": netns, "started": time.time(),
                                  "processes": [vars(watchdog), vars(worker)]})
            if worker is not None and all(tcp_open(netns, "127.0.0.1", p, 0.2)
                                          for p in (settings.port, settings.admin_port)):
                return int((time.monotonic() - began) * 1000)
            time.sleep(0.05)
        self.down()
        raise SoftEtherError(f"vpnserver in {netns} did not listen on {settings.port} and "
                             f"{settings.admin_port} within {timeout:g} s",
                             hint=f"see {self.folder('log')}/server_log")

    def _exe_is_ours(self, pid: int) -> bool:
        try:
            exe, ours = os.stat(f"/proc/{pid}/exe"), os.stat(self.binary)
        except OSError:
            return False
        return (exe.st_dev, exe.st_ino) == (ours.st_dev, ours.st_ino)

    @staticmethod
    def _children(entry: dict) -> list[ProcessId]:
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit() and _ppid(int(name)) == entry["pid"]:
                child = ProcessId.of(int(name))
                if child and (child.exe_dev, child.exe_ino) == (entry["exe_dev"], entry["exe_ino"]):
                    found.append(child)
        return found

    def _find_worker(self, parent: int) -> ProcessId | None:
        """vpnserver execsvc forks once: a watchdog parent and the worker child."""
        for entry in os.listdir("/proc"):
            if entry.isdigit() and _ppid(int(entry)) == parent and self._exe_is_ours(int(entry)):
                return ProcessId.of(int(entry))
        return None

    def _tail(self, name: str, lines: int = 5) -> str:
        try:
            text = (self.state_dir / name).read_text(errors="replace")
        except OSError:
            return "(no output)"
        return " | ".join(l.strip() for l in text.splitlines()[-lines:] if l.strip()) or "(no output)"

    def _vpncmd(self, commands: list[Command], admin: str, user_secrets: list[str], *,
                port: int, timeout: float = 30.0) -> str:
        state = self.recorded() or {}
        worker = next((e for e in reversed(state.get("processes", [])) if self._owned(e)), None)
        if worker is None:
            raise SoftEtherError("vpnserver is not running; cannot configure it")
        batch_name = f"aovpn-batch-{secrets.token_hex(4)}.txt"
        batch = self.folder("tmp") / batch_name  # /tmp inside the instance's mount namespace
        fd = os.open(batch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(c.line for c in commands) + "\n")
        # --root/--wd: the target's own root, also when this machine is itself a container
        # (plain --mount would put vpncmd at the root of the outermost mount namespace).
        argv = ["nsenter", "--target", str(worker["pid"]), "--net", "--mount", "--root", "--wd",
                str(SYSTEM_VPNCMD), f"localhost:{port}", "/SERVER",
                f"/IN:/tmp/{batch_name}"]
        try:
            # The admin password goes to the prompt on stdin, never on a command line.
            res = subprocess.run(argv, input=admin + "\n", capture_output=True, text=True,
                                 timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise SoftEtherError(f"vpncmd did not finish within {timeout:g} s",
                                 hint="is the admin password in admin.secret still the server's?")
        finally:
            batch.unlink(missing_ok=True)
        secrets_ = [admin, *user_secrets]
        problems = check_vpncmd_output(res.stdout + res.stderr, commands, secrets_)
        (self.state_dir / "vpncmd.log").write_text(redact(res.stdout + res.stderr, secrets_))
        if problems:
            raise SoftEtherError("configuring SoftEther failed: " + "; ".join(problems),
                                 hint=f"see {self.state_dir}/vpncmd.log")
        return redact(res.stdout, secrets_)

    def down(self, *, grace: float = 4.0) -> dict:
        """Stop the processes this instance started, by PID; leave everything else."""
        state = self.recorded()
        if not state:
            return {"changed": False, "stopped": [], "state_dir": str(self.state_dir)}
        owned = [e for e in state.get("processes", []) if self._owned(e)]
        # A worker the watchdog restarted after a crash is ours too: its parent is our
        # watchdog and it runs our binary.
        known = {e["pid"] for e in owned}
        for entry in list(owned):
            for child in self._children(entry):
                if child.pid not in known:
                    owned.append(vars(child))
                    known.add(child.pid)
        stopped = []
        for entry in owned:  # watchdog first, so that it cannot restart the worker
            try:
                os.kill(entry["pid"], signal.SIGTERM)
                stopped.append(entry["pid"])
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(self._owned(e) for e in owned):
            time.sleep(0.05)
        killed = []
        for entry in owned:
            if self._owned(entry):
                try:
                    os.kill(entry["pid"], signal.SIGKILL)
                    killed.append(entry["pid"])
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(self._owned(e) for e in owned):
            time.sleep(0.05)
        left = [e["pid"] for e in owned if self._owned(e)]
        if left:
            raise SoftEtherError(f"vpnserver PIDs {left} did not exit after SIGKILL")
        state["processes"] = []
        self._record(state)
        return {"changed": bool(stopped), "stopped": stopped, "killed": killed,
                "state_dir": str(self.state_dir)}

    def _stop_leftovers(self) -> None:
        """A recorded process that is still ours but not a full instance: stop it."""
        state = self.recorded() or {}
        if any(self._owned(e) for e in state.get("processes", [])):
            self.down()

    def status(self) -> dict:
        state = self.recorded() or {}
        running = self.is_running()
        netns = state.get("netns")
        listening = {}
        if running and netns:
            for port in (state.get("port"), state.get("admin_port")):
                if port:
                    listening[str(port)] = tcp_open(netns, "127.0.0.1", port, 0.3)
        return {"running": running, "netns": netns, "pids": self.pids(), "hub": state.get("hub"),
                "users": state.get("users", []), "port": state.get("port"),
                "listening": listening, "state_dir": str(self.state_dir)}


# ---------------------------------------------------------------------------------------
# 3. command line


def users_from_env(names: list[str], environ=os.environ) -> dict[str, str]:
    return passwords_from_env(names, PASSWORD_ENV_PREFIX, PASSWORD_ENV, environ, SoftEtherError)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aovpn_lab.sstp.softether",
                                description="Lab SSTP gateway: Debian's SoftEther, patched, in a netns.")
    sub = p.add_subparsers(dest="action", required=True)
    patch = sub.add_parser("patch", help="only write the patched vpnserver copy into DIR")
    patch.add_argument("directory")
    up = sub.add_parser("up", help="start (or keep) an instance and configure it")
    up.add_argument("--netns", required=True)
    up.add_argument("--state", required=True, help="instance folder (created, mode 0700)")
    up.add_argument("--cert", required=True, help="server certificate, PEM (RSA or ECDSA)")
    up.add_argument("--key", required=True, help="its private key, PEM, unencrypted")
    up.add_argument("--chain", help="intermediate CA certificates to send, PEM (a fullchain "
                                    "--cert works too)")
    up.add_argument("--user", action="append", default=[], required=True,
                    help=f"hub user; password from ${PASSWORD_ENV_PREFIX}<USER> "
                         f"(or ${PASSWORD_ENV} for one user)")
    up.add_argument("--hub", default="LAB")
    up.add_argument("--port", type=int, default=443)
    up.add_argument("--admin-port", type=int, default=5555)
    up.add_argument("--nat-host", default="198.19.2.1")
    up.add_argument("--nat-mask", default="255.255.255.0")
    up.add_argument("--dhcp-start", default="198.19.2.10")
    up.add_argument("--dhcp-end", default="198.19.2.200")
    down = sub.add_parser("down", help="stop the instance's processes (by recorded PID)")
    down.add_argument("--state", required=True)
    down.add_argument("--purge", action="store_true", help="also delete the instance folder")
    status = sub.add_parser("status", help="is the instance running and listening")
    status.add_argument("--state", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.action == "patch":
            prepared = prepare_binary(Path(args.directory))
            result = {"changed": prepared.changed, "binary": str(prepared.binary),
                      "sha256": prepared.sha256, "original_sha256": prepared.original_sha256}
        elif args.action == "up":
            settings = SoftEtherSettings(
                users=users_from_env(args.user), hub=args.hub, port=args.port,
                admin_port=args.admin_port, nat_host=args.nat_host, nat_mask=args.nat_mask,
                dhcp_start=args.dhcp_start, dhcp_end=args.dhcp_end)
            instance = SoftEtherInstance(args.state, args.netns)
            result = instance.up(settings, Path(args.cert), Path(args.key),
                                 chain_pem=Path(args.chain) if args.chain else None)
        elif args.action == "down":
            instance = SoftEtherInstance(args.state)
            result = instance.down()
            if args.purge and instance.state_dir.exists():
                shutil.rmtree(instance.state_dir)
                result["changed"] = True
                result["purged"] = True
        else:
            result = SoftEtherInstance(args.state).status()
            print(json.dumps(result))
            return 0 if result["running"] else 1
    except AovpnError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        print(f"softether: error: {exc}", file=sys.stderr)
        return exc.exit_code if exc.exit_code != 0 else 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
