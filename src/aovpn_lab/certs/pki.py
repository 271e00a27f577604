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
import ipaddress
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from aovpn_lab.certs.errors import CertificateProfileError
from aovpn_lab.certs.oids import UPN_OID, eku_oid
from aovpn_lab.certs.profiles import CaSpec, CertProfile, ExtensionSpec, KeySpec, load_profile

MANIFEST_NAME = "pki-manifest.json"
LOCK_NAME = ".pki.lock"
MANIFEST_FORMAT = 1
#: A cached set whose earliest leaf expires sooner than this is regenerated.
RENEW_BEFORE = dt.timedelta(days=1)
#: Certificates are back-dated this much, for peers whose clocks run a little behind.
BACKDATE = dt.timedelta(hours=1)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,252}$")
_SUBJECT_OIDS = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


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


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _name(attrs: dict[str, str], cn: str) -> x509.Name:
    rdns = [x509.NameAttribute(_SUBJECT_OIDS[k], v) for k, v in attrs.items() if k != "CN"]
    rdns.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(rdns)


def _der_utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    n = len(data)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x0c" + length + data


def _revocation_extensions(builder: x509.CertificateBuilder, spec: ExtensionSpec, issuer_slug: str) -> x509.CertificateBuilder:
    fill = lambda url: url.replace("{ca}", issuer_slug)  # noqa: E731
    if spec.crl_distribution_points:
        points = [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(fill(u))], relative_name=None, reasons=None, crl_issuer=None
            )
            for u in spec.crl_distribution_points
        ]
        builder = builder.add_extension(x509.CRLDistributionPoints(points), critical=False)
    access = [
        x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(fill(u)))
        for u in spec.ocsp
    ] + [
        x509.AccessDescription(x509.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(fill(u)))
        for u in spec.ca_issuers
    ]
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    if spec.policies:
        infos = []
        for p in spec.policies:
            qualifiers: list[str | x509.UserNotice] = []
            if p.cps:
                qualifiers.append(fill(p.cps))
            if p.notice:
                qualifiers.append(x509.UserNotice(notice_reference=None, explicit_text=p.notice))
            infos.append(x509.PolicyInformation(x509.ObjectIdentifier(p.oid), qualifiers or None))
        builder = builder.add_extension(x509.CertificatePolicies(infos), critical=False)
    return builder


def _base_builder(subject: x509.Name, issuer: x509.Name, public_key: Any, now: dt.datetime, days: int) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _aki(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _ca_cert(
    spec: CaSpec,
    key: PrivateKey,
    issuer: tuple[x509.Certificate, PrivateKey, str] | None,
    path_length: int | None,
    extensions: ExtensionSpec | None,
    profile: CertProfile,
    now: dt.datetime,
    days: int,
) -> x509.Certificate:
    subject = _name(spec.subject, spec.name)
    issuer_name = issuer[0].subject if issuer else subject
    b = _base_builder(subject, issuer_name, key.public_key(), now, days)
    b = b.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    b = b.add_extension(
        x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
        ),
        critical=True,
    )
    if issuer:
        b = b.add_extension(_aki(issuer[0]), critical=False)
        if extensions and not extensions.empty:
            b = _revocation_extensions(b, extensions, issuer[2])
    return b.sign(issuer[1] if issuer else key, profile.hash_algorithm())


def _leaf_cert(
    name: str,
    role: str,
    key: PrivateKey,
    issuer: tuple[x509.Certificate, PrivateKey, str],
    profile: CertProfile,
    now: dt.datetime,
    days: int,
) -> x509.Certificate:
    role_spec = profile.roles[role]
    b = _base_builder(_name(profile.leaf.subject, name), issuer[0].subject, key.public_key(), now, days)
    b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    usages = set(role_spec.key_usage["rsa" if isinstance(key, rsa.RSAPrivateKey) else "ec"])
    b = b.add_extension(
        x509.KeyUsage(
            digital_signature="digital_signature" in usages,
            content_commitment="content_commitment" in usages,
            key_encipherment="key_encipherment" in usages,
            data_encipherment="data_encipherment" in usages,
            key_agreement="key_agreement" in usages,
            key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        ),
        critical=True,
    )
    if role_spec.eku:
        b = b.add_extension(x509.ExtendedKeyUsage([eku_oid(e) for e in role_spec.eku]), critical=False)
    sans: list[x509.GeneralName] = []
    upn = name if "@" in name else (f"{name}@{profile.upn_suffix}" if profile.upn_suffix else None)
    for kind in role_spec.san:
        if kind == "dns":
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        elif kind == "upn" and upn:
            sans.append(x509.OtherName(UPN_OID, _der_utf8(upn)))
        elif kind == "email" and upn:
            sans.append(x509.RFC822Name(upn))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    b = b.add_extension(_aki(issuer[0]), critical=False)
    if not profile.leaf_extensions.empty:
        b = _revocation_extensions(b, profile.leaf_extensions, issuer[2])
    return b.sign(issuer[1], profile.hash_algorithm())


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


def _generate_keys(specs: list[KeySpec]) -> list[PrivateKey]:
    # RSA-4096 generation dominates the run time and releases the GIL: use threads.
    if sum(1 for s in specs if s.type == "rsa") < 2:
        return [s.generate() for s in specs]
    with ThreadPoolExecutor(max_workers=min(len(specs), os.cpu_count() or 2, 8)) as pool:
        return list(pool.map(lambda s: s.generate(), specs))


def _generate(out_dir: Path, request: _Request) -> None:
    prof = request.profile
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    cas = [prof.root, *prof.intermediates]
    keys = _generate_keys([c.key for c in cas] + [prof.leaf.key for _ in request.entities])
    ca_keys, leaf_keys = keys[: len(cas)], keys[len(cas) :]

    leaf_days = request.validity_days
    # Each CA outlives what it signs: its own configured validity, but at least one day
    # longer than the longest-lived certificate below it.
    ca_days: list[int] = []
    floor = leaf_days
    for spec in reversed(cas):
        floor = max(spec.validity_days, floor + 1)
        ca_days.append(floor)
    ca_days.reverse()

    root = _ca_cert(prof.root, ca_keys[0], None, None, None, prof, now, ca_days[0])
    issuer = (root, ca_keys[0], _slug(prof.root.name))
    intermediates: list[x509.Certificate] = []
    n = len(prof.intermediates)
    for i, spec in enumerate(prof.intermediates):
        cert = _ca_cert(spec, ca_keys[i + 1], issuer, n - 1 - i, prof.intermediate_extensions, prof, now, ca_days[i + 1])
        intermediates.append(cert)
        issuer = (cert, ca_keys[i + 1], _slug(spec.name))

    chain_pem = b"".join(_pem(c) for c in reversed(intermediates))
    outputs: dict[str, tuple[bytes, int]] = {
        "ca.pem": (_pem(root), 0o644),
        "intermediates.pem": (b"".join(_pem(c) for c in intermediates), 0o644),
        "chain.pem": (chain_pem, 0o644),
    }
    earliest = None
    for (name, role), key in zip(request.entities, leaf_keys):
        cert = _leaf_cert(name, role, key, issuer, prof, now, leaf_days)
        earliest = min(earliest or cert.not_valid_after_utc, cert.not_valid_after_utc)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        outputs[f"{name}.cert.pem"] = (_pem(cert), 0o644)
        outputs[f"{name}.key.pem"] = (key_pem, 0o600)
        outputs[f"{name}.fullchain.pem"] = (_pem(cert) + chain_pem, 0o644)
    if earliest is None:
        earliest = root.not_valid_after_utc

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
