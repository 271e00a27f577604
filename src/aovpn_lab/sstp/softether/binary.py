"""The binary fix for Debian 12's ``softether-vpnserver``.

Debian's build (5.01.9674+git20200806) never answers ``SSTP_DUPLEX_POST``:
``ProtoHandleConnection()`` looks the protocol up by name in a loop that, on a match,
assigns ``impl = container->Impl`` from a NULL ``container`` instead of ``container =
tmp`` (fixed upstream in 5611156c, released in 5.02.5180). GCC saw the NULL dereference
and compiled the whole lookup into "return false", so the 65 bytes at file offset
0x3a00f (virtual address 0x3a00f: the text segment maps 1:1) loop over
``proto->Containers`` calling ``StrCmp`` and leave on a match *or* on the end of the list
to the same ``return false`` (0x3a050). :func:`prepare_binary` copies the binary and
``hamcore.se2`` into a lab folder, checks the original's SHA-256, and overwrites those
bytes with :data:`PATCH_ASM` — the loop upstream's C describes, keeping the matching
container in ``rax`` and jumping to 0x3a0a9, where the compiled ``ProtoDetect()`` branch
continues with ``container`` in ``rax`` (``r12 = container; impl = container->Impl;
options = container->Options``). Registers: ``r15`` = proto, ``rbp`` = protocol name,
``rbx`` = sock (kept: the code after 0x3a0a9 reads it), ``r12``/``r13`` = scratch
(callee-saved, rewritten after 0x3a0a9). The system's files are never written.

The patch is data here and can be rebuilt from its source with binutils::

    >>> len(PATCH_BYTES), PATCH_OFFSET == 0x3a00f, PATCH_BYTES[-3:] == b"\\xcc" * 3
    (65, True, True)
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ... import tool
from .errors import SoftEtherError

SYSTEM_BINARY = Path("/usr/libexec/softether/vpnserver/vpnserver")
SYSTEM_HAMCORE = Path("/usr/libexec/softether/vpnserver/hamcore.se2")
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
        res = tool.run(["dpkg-query", "-W", "-f", "${Version}", PACKAGE], step="look up the package version",
                       timeout=10)
    except tool.ToolError:
        return "unknown"
    # dpkg-query exits 1 (and prints its error on stderr) when the package is unknown
    return res.stdout.strip() if res.ok and res.stdout.strip() else "not installed"


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
