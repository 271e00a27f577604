"""Certificate profiles: the typed view of ``profiles/certificates.yml``.

>>> from aovpn_lab.certs.profiles import load_profile
>>> p = load_profile("small")
>>> p.root.key.label, len(p.intermediates)
('ecdsa-p256', 0)

Every validation error is a :class:`CertificateProfileError` whose one-line message names
the file and the key that is wrong.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from aovpn_lab.certs.errors import CertificateProfileError
from aovpn_lab.certs.oids import eku_oid
from aovpn_lab.paths import PROFILES

PROFILES_FILE_NAME = "certificates.yml"

_CURVES: dict[str, tuple[type[ec.EllipticCurve], str]] = {
    "secp256r1": (ec.SECP256R1, "p256"),
    "prime256v1": (ec.SECP256R1, "p256"),
    "p-256": (ec.SECP256R1, "p256"),
    "secp384r1": (ec.SECP384R1, "p384"),
    "p-384": (ec.SECP384R1, "p384"),
    "secp521r1": (ec.SECP521R1, "p521"),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_SUBJECT_KEYS = ("C", "ST", "L", "O", "OU", "CN")
_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
)
_SAN_KINDS = ("dns", "upn", "email")
ROLES = ("gateway", "machine", "user")


def default_profiles_file() -> Path:
    return PROFILES / PROFILES_FILE_NAME


@dataclass(frozen=True)
class KeySpec:
    """A key to generate: ``type`` "ec" (with ``curve``) or "rsa" (with ``bits``)."""

    type: str
    curve: str | None = None
    bits: int | None = None

    @property
    def label(self) -> str:
        """``ecdsa-p256`` / ``rsa-4096``: the spelling the size model accepts."""
        if self.type == "ec":
            return f"ecdsa-{_CURVES[self.curve][1]}"  # type: ignore[index]
        return f"rsa-{self.bits}"

    def generate(self) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
        if self.type == "ec":
            return ec.generate_private_key(_CURVES[self.curve][0]())  # type: ignore[index]
        return rsa.generate_private_key(public_exponent=65537, key_size=self.bits)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PolicySpec:
    oid: str
    cps: str | None = None
    notice: str | None = None


@dataclass(frozen=True)
class ExtensionSpec:
    """Revocation and policy extensions; URL templates may use ``{ca}``."""

    crl_distribution_points: tuple[str, ...] = ()
    ocsp: tuple[str, ...] = ()
    ca_issuers: tuple[str, ...] = ()
    policies: tuple[PolicySpec, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.crl_distribution_points or self.ocsp or self.ca_issuers or self.policies)


@dataclass(frozen=True)
class CaSpec:
    name: str
    key: KeySpec
    validity_days: int
    subject: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LeafSpec:
    key: KeySpec
    validity_days: int
    subject: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RoleSpec:
    name: str
    eku: tuple[str, ...]
    key_usage: dict[str, tuple[str, ...]]
    san: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class CertProfile:
    name: str
    description: str
    hash: str
    root: CaSpec
    intermediates: tuple[CaSpec, ...]
    leaf: LeafSpec
    upn_suffix: str | None
    intermediate_extensions: ExtensionSpec
    leaf_extensions: ExtensionSpec
    roles: dict[str, RoleSpec]
    source: Path
    #: sha256 over the profile's and roles' data: a changed YAML means a new PKI.
    fingerprint: str

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return _HASHES[self.hash]()


# ----------------------------------------------------------------------------- loading


class _Ctx:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> CertificateProfileError:
        return CertificateProfileError(f"{self.path}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        return value

    def strlist(self, value: Any, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where, "expected a list of strings")
        return tuple(value)

    def days(self, value: Any, where: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.fail(where, f"expected a positive number of days, got {value!r}")
        return value

    def key(self, value: Any, where: str) -> KeySpec:
        m = self.mapping(value, where)
        kind = m.get("type")
        if kind == "ec":
            curve = str(m.get("curve", "secp256r1")).lower()
            if curve not in _CURVES:
                raise self.fail(f"{where}.curve", f"unknown curve {curve!r} (known: {', '.join(sorted(_CURVES))})")
            return KeySpec("ec", curve=curve)
        if kind == "rsa":
            bits = m.get("bits", 2048)
            if not isinstance(bits, int) or not 2048 <= bits <= 8192:
                raise self.fail(f"{where}.bits", f"expected 2048..8192, got {bits!r}")
            return KeySpec("rsa", bits=bits)
        raise self.fail(f"{where}.type", f"expected 'ec' or 'rsa', got {kind!r}")

    def subject(self, value: Any, where: str) -> dict[str, str]:
        m = self.mapping(value, where)
        for k, v in m.items():
            if k not in _SUBJECT_KEYS:
                raise self.fail(where, f"unknown subject attribute {k!r} (known: {', '.join(_SUBJECT_KEYS)})")
            if not isinstance(v, str) or not v:
                raise self.fail(f"{where}.{k}", "expected a non-empty string")
            if k == "C" and len(v) != 2:
                raise self.fail(f"{where}.C", f"country must be 2 letters, got {v!r}")
        return {k: m[k] for k in _SUBJECT_KEYS if k in m}

    def ca(self, value: Any, where: str) -> CaSpec:
        m = self.mapping(value, where)
        name = m.get("name")
        if not isinstance(name, str) or not name:
            raise self.fail(f"{where}.name", "expected the CA's common name")
        return CaSpec(
            name=name,
            key=self.key(m.get("key"), f"{where}.key"),
            validity_days=self.days(m.get("validity_days", 3650), f"{where}.validity_days"),
            subject=self.subject(m.get("subject"), f"{where}.subject"),
        )

    def extensions(self, value: Any, where: str) -> ExtensionSpec:
        m = self.mapping(value, where)
        known = {"crl_distribution_points", "ocsp", "ca_issuers", "policies"}
        unknown = set(m) - known
        if unknown:
            raise self.fail(where, f"unknown extension key(s) {sorted(unknown)} (known: {sorted(known)})")
        policies = []
        raw_policies = m.get("policies") or []
        if not isinstance(raw_policies, list):
            raise self.fail(f"{where}.policies", "expected a list")
        for i, p in enumerate(raw_policies):
            pm = self.mapping(p, f"{where}.policies[{i}]")
            oid = str(pm.get("oid", ""))
            parts = oid.split(".")
            if len(parts) < 2 or not all(x.isdigit() for x in parts):
                raise self.fail(f"{where}.policies[{i}].oid", f"expected a dotted OID, got {oid!r}")
            policies.append(PolicySpec(oid=oid, cps=pm.get("cps"), notice=pm.get("notice")))
        return ExtensionSpec(
            crl_distribution_points=self.strlist(m.get("crl_distribution_points"), f"{where}.crl_distribution_points"),
            ocsp=self.strlist(m.get("ocsp"), f"{where}.ocsp"),
            ca_issuers=self.strlist(m.get("ca_issuers"), f"{where}.ca_issuers"),
            policies=tuple(policies),
        )

    def role(self, name: str, value: Any) -> RoleSpec:
        where = f"roles.{name}"
        m = self.mapping(value, where)
        ekus = self.strlist(m.get("eku"), f"{where}.eku")
        for e in ekus:
            try:
                eku_oid(e)
            except KeyError:
                raise self.fail(f"{where}.eku", f"unknown EKU {e!r} (use a known name or a dotted OID)") from None
        ku_map = self.mapping(m.get("key_usage"), f"{where}.key_usage")
        key_usage: dict[str, tuple[str, ...]] = {}
        for kt in ("ec", "rsa"):
            usages = self.strlist(ku_map.get(kt, ["digital_signature"]), f"{where}.key_usage.{kt}")
            for u in usages:
                if u not in _KEY_USAGES:
                    raise self.fail(f"{where}.key_usage.{kt}", f"unknown key usage {u!r} (known: {', '.join(_KEY_USAGES)})")
            key_usage[kt] = usages
        san = self.strlist(m.get("san"), f"{where}.san")
        for s in san:
            if s not in _SAN_KINDS:
                raise self.fail(f"{where}.san", f"unknown SAN kind {s!r} (known: {', '.join(_SAN_KINDS)})")
        return RoleSpec(name=name, eku=ekus, key_usage=key_usage, san=san, description=str(m.get("description", "")))


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CertificateProfileError(f"{path}: cannot read certificate profiles ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CertificateProfileError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise CertificateProfileError(f"{path}: expected a mapping with a 'profiles' mapping at the top")
    return data


def profile_names(path: Path | None = None) -> list[str]:
    """Names of the profiles defined in the file, sorted."""
    path = Path(path) if path else default_profiles_file()
    return sorted(_read(path)["profiles"])


def load_profile(name: str, path: Path | None = None) -> CertProfile:
    """Load and validate one profile. Unknown name -> error naming the file and known names."""
    path = Path(path) if path else default_profiles_file()
    data = _read(path)
    ctx = _Ctx(path)
    profiles = data["profiles"]
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise CertificateProfileError(f"unknown certificate profile {name!r}: {path} defines {known}")
    raw = ctx.mapping(profiles[name], f"profiles.{name}")
    where = f"profiles.{name}"

    raw_roles = ctx.mapping(data.get("roles"), "roles")
    missing = [r for r in ROLES if r not in raw_roles]
    if missing:
        raise ctx.fail("roles", f"missing role(s) {', '.join(missing)}")
    roles = {r: ctx.role(r, raw_roles[r]) for r in ROLES}

    hash_name = str(raw.get("hash", "sha256")).lower()
    if hash_name not in _HASHES:
        raise ctx.fail(f"{where}.hash", f"expected one of {', '.join(_HASHES)}, got {hash_name!r}")
    raw_ints = raw.get("intermediates") or []
    if not isinstance(raw_ints, list):
        raise ctx.fail(f"{where}.intermediates", "expected a list (root-side first)")
    intermediates = tuple(ctx.ca(c, f"{where}.intermediates[{i}]") for i, c in enumerate(raw_ints))
    leaf_raw = ctx.mapping(raw.get("leaf"), f"{where}.leaf")
    leaf = LeafSpec(
        key=ctx.key(leaf_raw.get("key"), f"{where}.leaf.key"),
        validity_days=ctx.days(leaf_raw.get("validity_days", 397), f"{where}.leaf.validity_days"),
        subject=ctx.subject(leaf_raw.get("subject"), f"{where}.leaf.subject"),
    )
    if "CN" in leaf.subject:
        raise ctx.fail(f"{where}.leaf.subject.CN", "a leaf's CN is the entity name; remove it")
    ext = ctx.mapping(raw.get("extensions"), f"{where}.extensions")
    upn_suffix = raw.get("upn_suffix")
    if upn_suffix is not None and (not isinstance(upn_suffix, str) or "@" in upn_suffix):
        raise ctx.fail(f"{where}.upn_suffix", f"expected a domain such as corp.example.net, got {upn_suffix!r}")
    canonical = json.dumps({"profile": raw, "roles": raw_roles}, sort_keys=True, default=str)
    return CertProfile(
        name=name,
        description=" ".join(str(raw.get("description", "")).split()),
        hash=hash_name,
        root=ctx.ca(raw.get("root"), f"{where}.root"),
        intermediates=intermediates,
        leaf=leaf,
        upn_suffix=upn_suffix,
        intermediate_extensions=ctx.extensions(ext.get("intermediates"), f"{where}.extensions.intermediates"),
        leaf_extensions=ctx.extensions(ext.get("leaves"), f"{where}.extensions.leaves"),
        roles=roles,
        source=path,
        fingerprint=hashlib.sha256(canonical.encode()).hexdigest(),
    )
