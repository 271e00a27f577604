"""manifest.sha256: the SHA-256 of a run's results and evidence, so a result can be checked later.

The file is in coreutils sha256sum's format ("<hex>  <relative path>", one file a line),
so anyone can check a run folder without this tool:

    cd reports/<run-id> && sha256sum -c manifest.sha256

It lists results.json and every evidence file (everything under captures/, the cells'
captures, pytest-html.html and junit.xml when present). Pages regenerated from results.json
(report.html, its PNG, the certification pages) are not evidence and are left out, as is the
manifest itself: its own digest is printed in the certification report instead.

    >>> _line("ab" * 32, "captures/a b.pcap")
    'abababababababababababababababababababababababababababababababab  captures/a b.pcap'
    >>> _parse_line(_line("ab" * 32, "x\\\\y"), "m", 1)[0]
    'x\\\\y'
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import AovpnError
from .runfile import RESULTS_NAME, load

MANIFEST = "manifest.sha256"
EVIDENCE_DIR = "captures"
# Evidence beside results.json when the run wrote it.
EVIDENCE_FILES = ("pytest-html.html", "junit.xml")
_CHUNK = 1 << 20


class ManifestError(AovpnError):
    """A manifest that is missing or not in sha256sum's format: names the file and line."""


@dataclass(frozen=True)
class Verification:
    """A run folder checked against its manifest. Files added since are reported, not failed:
    they were never part of the result the manifest records."""
    manifest: Path
    manifest_sha256: str
    checked: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def evidence_files(run_dir: Path) -> list[str]:
    """Relative paths (POSIX) of results.json and every evidence file, in name order."""
    run_dir = Path(run_dir)
    results = load(run_dir)  # one clear error when there is no readable results.json
    names = {RESULTS_NAME}
    names |= {n for n in EVIDENCE_FILES if (run_dir / n).is_file()}
    captures = run_dir / EVIDENCE_DIR
    if captures.is_dir():
        names |= {p.relative_to(run_dir).as_posix() for p in captures.rglob("*") if p.is_file()}
    for cell in results.cells:  # a capture a cell kept elsewhere in the folder is evidence too
        names |= {c for c in cell.captures if _inside(c) and (run_dir / c).is_file()}
    return sorted(names)


def build(run_dir: Path) -> list[tuple[str, str]]:
    """(relative path, SHA-256) of results.json and every evidence file."""
    run_dir = Path(run_dir)
    return [(name, file_sha256(run_dir / name)) for name in evidence_files(run_dir)]


def write(run_dir: Path) -> Path:
    """Write manifest.sha256 in the run folder; returns its path."""
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text("".join(_line(digest, name) + "\n" for name, digest in build(run_dir)))
    tmp.replace(path)
    return path


def read(run_dir: Path) -> list[tuple[str, str]]:
    """The manifest's (relative path, SHA-256) entries; ManifestError when absent or malformed."""
    path = Path(run_dir) / MANIFEST
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest", hint="aovpn-lab certify writes it at the end of a run") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    return [_parse_line(line, path, n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def digest(run_dir: Path) -> str:
    """SHA-256 of the manifest file itself: printed in the report, it pins every digest listed."""
    return file_sha256(Path(run_dir) / MANIFEST)


def verify(run_dir: Path) -> Verification:
    run_dir = Path(run_dir)
    entries = read(run_dir)
    mismatched, missing = [], []
    for name, expected in entries:
        target = run_dir / name
        if not target.is_file():
            missing.append(name)
        elif file_sha256(target) != expected:
            mismatched.append(name)
    listed = {name for name, _ in entries}
    try:
        extra = [n for n in evidence_files(run_dir) if n not in listed]
    except AovpnError:  # results.json gone: already reported as missing
        extra = []
    return Verification(run_dir / MANIFEST, digest(run_dir), tuple(n for n, _ in entries), tuple(mismatched),
                        tuple(missing), tuple(extra))


def _inside(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts


def _line(digest: str, name: str) -> str:
    """sha256sum's line; a name with a backslash or newline is escaped and the line starts with '\\'."""
    if "\\" in name or "\n" in name:
        return "\\" + digest + "  " + name.replace("\\", "\\\\").replace("\n", "\\n")
    return f"{digest}  {name}"


def _parse_line(line: str, path: Path | str, n: int) -> tuple[str, str]:
    escaped = line.startswith("\\")
    body = line[1:] if escaped else line
    hexd, sep, name = body[:64], body[64:66], body[66:]
    if len(hexd) != 64 or any(c not in "0123456789abcdefABCDEF" for c in hexd) or sep not in ("  ", " *") or not name:
        raise ManifestError(f"{path}:{n}: not a sha256sum line (\"<64 hex digits>  <path>\")",
                            hint="rewrite it with aovpn-lab certify, or restore it from the run")
    if escaped:
        name = name.replace("\\\\", "\0").replace("\\n", "\n").replace("\0", "\\")
    if not _inside(name):
        raise ManifestError(f"{path}:{n}: {name!r} is outside the run folder",
                            hint="a manifest lists paths relative to its own folder")
    return name, hexd.lower()
