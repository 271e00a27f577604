"""Issue a lab PKI from a profile in ``profiles/certificates.yml``.

Example::

    from aovpn_lab.certs.pki import issue_pki
    files = issue_pki("small", Path("/tmp/pki"), gateways=["vpn.example.net"],
                      machines=["client.example.net"], users=["alice"])
    files.entity("vpn.example.net").cert      # /tmp/pki/vpn.example.net.cert.pem
    files.generated                           # False when the cached set was reused

From Ansible (``changed_when`` can use the JSON ``generated`` flag)::

    python -m aovpn_lab.certs.pki --profile large --out DIR \\
        --gateway vpn.example.net --machine client.example.net [--user alice] [--json]

Files written to ``out_dir`` (stable names, PEM):

=========================  ===============================================================
``ca.pem``                 the root CA certificate (the trust anchor to install)
``intermediates.pem``      the intermediate CAs, root-side first (int1, int2). ALWAYS
                           written; for a single-CA profile it is an empty file (0 bytes),
                           so playbooks copy it unconditionally.
``chain.pem``              the same intermediates in sending order, leaf-side first
                           (int2, int1): what a gateway sends after its own certificate.
                           Empty for a single-CA profile.
``<name>.cert.pem``        each entity's leaf certificate
``<name>.key.pem``         its private key, unencrypted PKCS#8, mode 0600
``<name>.fullchain.pem``   leaf followed by chain.pem (for TLS servers: SSTP, HAProxy)
``pki-manifest.json``      what was generated from what; written last
``.pki.lock``              flock(2) file serialising concurrent runs on one directory
=========================  ===============================================================

Idempotence: when ``pki-manifest.json`` records the same profile data (a hash of the
profile and roles in the YAML), the same names and validity, every listed file is present
with the recorded checksum, and no leaf expires within a day, nothing is generated and the
call takes milliseconds. Otherwise the whole PKI (CAs included) is generated again and
files of the previous set that are no longer wanted are removed. Files are written to a
temporary name and renamed, the manifest last, so an interrupted run is never mistaken
for a complete one.
"""
from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from aovpn_lab.certs.errors import CertificateProfileError
from aovpn_lab.certs.issuing import BACKDATE as BACKDATE  # re-exported for callers of pki
from aovpn_lab.certs.issuing import generate_keys, issue_cas, leaf_cert
from aovpn_lab.certs.profiles import CertProfile, load_profile

MANIFEST_NAME = "pki-manifest.json"
LOCK_NAME = ".pki.lock"
MANIFEST_FORMAT = 1
#: A cached set whose earliest leaf expires sooner than this is regenerated.
RENEW_BEFORE = dt.timedelta(days=1)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,252}$")


@dataclass(frozen=True)
class EntityFiles:
    name: str
    role: str  # "gateway" | "machine" | "user"
    cert: Path
    key: Path
    fullchain: Path


@dataclass(frozen=True)
class PkiFiles:
    """Paths of an issued PKI. ``generated`` is False when the cached set was reused."""

    profile: str
    out_dir: Path
    ca: Path
    intermediates: Path
    chain: Path
    manifest: Path
    entities: dict[str, EntityFiles]
    generated: bool
    seconds: float = 0.0
    intermediate_count: int = 0

    def entity(self, name: str) -> EntityFiles:
        try:
            return self.entities[name]
        except KeyError:
            raise KeyError(f"no certificate for {name!r} in {self.out_dir} (have: {', '.join(self.entities)})") from None

    def by_role(self, role: str) -> list[EntityFiles]:
        return [e for e in self.entities.values() if e.role == role]

    @property
    def gateways(self) -> list[EntityFiles]:
        return self.by_role("gateway")

    @property
    def machines(self) -> list[EntityFiles]:
        return self.by_role("machine")

    @property
    def users(self) -> list[EntityFiles]:
        return self.by_role("user")

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "out_dir": str(self.out_dir),
            "generated": self.generated,
            "seconds": round(self.seconds, 3),
            "ca": str(self.ca),
            "intermediates": str(self.intermediates),
            "intermediate_count": self.intermediate_count,
            "chain": str(self.chain),
            "manifest": str(self.manifest),
            "entities": {
                e.name: {"role": e.role, "cert": str(e.cert), "key": str(e.key), "fullchain": str(e.fullchain)}
                for e in self.entities.values()
            },
        }

    def summary(self) -> str:
        roles = ", ".join(f"{len(self.by_role(r))} {r}" for r in ("gateway", "machine", "user"))
        if self.generated:
            what = f"generated in {self.seconds:.1f} s"
        else:
            what = "up to date, nothing generated"
        return (
            f"pki profile {self.profile}: root + {self.intermediate_count} intermediate(s), {roles} "
            f"in {self.out_dir}: {what}"
        )


@dataclass
class _Request:
    profile: CertProfile
    validity_days: int
    entities: list[tuple[str, str]]  # (name, role), in request order
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        canonical = json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "profile": self.profile.name,
                "profile_data": self.profile.fingerprint,
                "validity_days": self.validity_days,
                "entities": self.entities,
            },
            sort_keys=True,
        )
        self.fingerprint = hashlib.sha256(canonical.encode()).hexdigest()


# --------------------------------------------------------------------------- public API


def issue_pki(
    profile: str,
    out_dir: Path,
    gateways: Sequence[str],
    machines: Sequence[str],
    users: Sequence[str] = (),
    validity_days: int | None = None,
    *,
    profiles_file: Path | None = None,
    force: bool = False,
) -> PkiFiles:
    """Issue (or reuse) the PKI ``profile`` for the given entity names into ``out_dir``.

    ``validity_days`` applies to the leaves (default: the profile's ``leaf.validity_days``);
    CAs are made to outlive their leaves. ``force`` regenerates even when the cache is
    valid. Raises :class:`CertificateProfileError` for an unknown/invalid profile and
    ``ValueError`` for unusable names (duplicates, path separators, empty).
    """
    started = time.monotonic()
    prof = load_profile(profile, profiles_file)
    days = prof.leaf.validity_days if validity_days is None else int(validity_days)
    if days < 1:
        raise ValueError(f"validity_days must be at least 1, got {days}")
    entities = _entities(gateways, machines, users)
    request = _Request(prof, days, entities)
    out_dir = Path(out_dir)
    if not force and _cached(out_dir, request) is not None:  # fast path, no lock needed
        return _files(out_dir, request, generated=False, seconds=time.monotonic() - started)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Several Ansible hosts may run this at once for the same directory: one generates,
    # the others wait and then find the finished set.
    with open(out_dir / LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or _cached(out_dir, request) is None:
            _generate(out_dir, request)
            return _files(out_dir, request, generated=True, seconds=time.monotonic() - started)
    return _files(out_dir, request, generated=False, seconds=time.monotonic() - started)


# ----------------------------------------------------------------------------- helpers


def _entities(gateways: Iterable[str], machines: Iterable[str], users: Iterable[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for role, names in (("gateway", gateways), ("machine", machines), ("user", users)):
        if isinstance(names, str):
            names = [names]
        for name in names:
            if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
                raise ValueError(
                    f"{role} name {name!r} is not usable: expected a host name, FQDN, IP address or "
                    "user name (letters, digits, '.', '-', '_', '@')"
                )
            if name in seen:
                raise ValueError(f"name {name!r} is given twice (as {seen[name]} and {role}); file names must be unique")
            seen[name] = role
            out.append((name, role))
    return out


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _cached(out_dir: Path, request: _Request) -> dict[str, Any] | None:
    """The manifest when ``out_dir`` holds a complete, matching, still-valid set."""
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("fingerprint") != request.fingerprint:
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != set(_expected_names(request)):
        return None
    for rel, digest in files.items():
        if _sha256_file(out_dir / rel) != digest:
            return None
    try:
        not_after = dt.datetime.fromisoformat(manifest["earliest_not_after"])
    except (KeyError, TypeError, ValueError):
        return None
    if not_after - RENEW_BEFORE <= dt.datetime.now(dt.timezone.utc):
        return None
    return manifest


def _expected_names(request: _Request) -> list[str]:
    names = ["ca.pem", "intermediates.pem", "chain.pem"]
    for name, _role in request.entities:
        names += [f"{name}.cert.pem", f"{name}.key.pem", f"{name}.fullchain.pem"]
    return names


def _files(out_dir: Path, request: _Request, *, generated: bool, seconds: float) -> PkiFiles:
    ents = {
        name: EntityFiles(
            name=name,
            role=role,
            cert=out_dir / f"{name}.cert.pem",
            key=out_dir / f"{name}.key.pem",
            fullchain=out_dir / f"{name}.fullchain.pem",
        )
        for name, role in request.entities
    }
    return PkiFiles(
        profile=request.profile.name,
        out_dir=out_dir,
        ca=out_dir / "ca.pem",
        intermediates=out_dir / "intermediates.pem",
        chain=out_dir / "chain.pem",
        manifest=out_dir / MANIFEST_NAME,
        entities=ents,
        generated=generated,
        seconds=seconds,
        intermediate_count=len(request.profile.intermediates),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file in the same directory and rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _issue(request: _Request, now: dt.datetime) -> tuple[dict[str, tuple[bytes, int]], dt.datetime]:
    """Every file of the set (name -> (data, mode)) and the earliest leaf expiry."""
    prof = request.profile
    cas = [prof.root, *prof.intermediates]
    keys = generate_keys([c.key for c in cas] + [prof.leaf.key for _ in request.entities])
    ca_keys, leaf_keys = keys[: len(cas)], keys[len(cas) :]
    leaf_days = request.validity_days
    root, intermediates, issuer = issue_cas(prof, ca_keys, now, leaf_days)

    chain_pem = b"".join(_pem(c) for c in reversed(intermediates))
    outputs: dict[str, tuple[bytes, int]] = {
        "ca.pem": (_pem(root), 0o644),
        "intermediates.pem": (b"".join(_pem(c) for c in intermediates), 0o644),
        "chain.pem": (chain_pem, 0o644),
    }
    earliest = None
    for (name, role), key in zip(request.entities, leaf_keys):
        cert = leaf_cert(name, role, key, issuer, prof, now, leaf_days)
        earliest = min(earliest or cert.not_valid_after_utc, cert.not_valid_after_utc)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        outputs[f"{name}.cert.pem"] = (_pem(cert), 0o644)
        outputs[f"{name}.key.pem"] = (key_pem, 0o600)
        outputs[f"{name}.fullchain.pem"] = (_pem(cert) + chain_pem, 0o644)
    if earliest is None:
        earliest = root.not_valid_after_utc
    return outputs, earliest


def _generate(out_dir: Path, request: _Request) -> None:
    prof = request.profile
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    outputs, earliest = _issue(request, now)

    # Drop the previous manifest first: if we are interrupted, the set is "incomplete".
    manifest_path = out_dir / MANIFEST_NAME
    old_files: list[str] = []
    try:
        old_files = list(json.loads(manifest_path.read_text(encoding="utf-8")).get("files", {}))
    except (OSError, ValueError, AttributeError):
        pass
    manifest_path.unlink(missing_ok=True)
    for rel, (data, mode) in outputs.items():
        _write(out_dir / rel, data, mode)
    for rel in old_files:
        if rel not in outputs and "/" not in rel and rel.endswith(".pem"):
            (out_dir / rel).unlink(missing_ok=True)
    manifest = {
        "format": MANIFEST_FORMAT,
        "fingerprint": request.fingerprint,
        "profile": prof.name,
        "profile_file": str(prof.source),
        "validity_days": request.validity_days,
        "entities": [{"name": n, "role": r} for n, r in request.entities],
        "created": now.isoformat(),
        "earliest_not_after": earliest.isoformat(),
        "files": {rel: hashlib.sha256(data).hexdigest() for rel, (data, _m) in outputs.items()},
    }
    _write(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode(), 0o644)


# -------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aovpn_lab.certs.pki",
        description=(
            "Issue the lab PKI for a certificate profile of profiles/certificates.yml into a "
            "directory. Re-running with the same profile and names reuses the files (fast). "
            "Writes ca.pem, intermediates.pem, chain.pem and NAME.cert.pem / NAME.key.pem / "
            "NAME.fullchain.pem per entity."
        ),
    )
    p.add_argument("--profile", required=True, help="profile name, e.g. small or large")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created)")
    p.add_argument("--gateway", action="append", default=[], metavar="FQDN",
                   help="gateway (IKEv2/SSTP server) name clients dial; repeatable")
    p.add_argument("--machine", action="append", default=[], metavar="FQDN",
                   help="device tunnel client machine FQDN; repeatable")
    p.add_argument("--user", action="append", default=[], metavar="NAME",
                   help="user tunnel (EAP-TLS) user name; repeatable")
    p.add_argument("--validity-days", type=int, default=None, metavar="N",
                   help="leaf validity (default: the profile's)")
    p.add_argument("--profiles-file", type=Path, default=None, metavar="FILE",
                   help="certificate profiles file (default: profiles/certificates.yml)")
    p.add_argument("--force", action="store_true", help="regenerate even when the files are up to date")
    p.add_argument("--json", action="store_true", help="print JSON (file paths, generated flag) instead of a summary")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        files = issue_pki(
            args.profile, args.out, args.gateway, args.machine, args.user, args.validity_days,
            profiles_file=args.profiles_file, force=args.force,
        )
    except (CertificateProfileError, ValueError) as exc:
        print(f"aovpn-lab pki: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"aovpn-lab pki: error: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(json.dumps(files.to_json()) if args.json else files.summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
