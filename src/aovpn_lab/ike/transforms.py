"""IKEv2 transform names, IDs and proposal spellings.

One table maps the algorithm names used in profiles to IKEv2 transform IDs
(RFC 7296 / IANA "IKEv2 Parameters") and to the two spellings this project
meets in practice:

* strongSwan proposal strings: ``aes128-sha256-modp2048``,
  ``aes128gcm16-prfsha256-ecp256`` (``-`` separated, lower case; a non-AEAD
  proposal without a PRF gets the PRF matching its integrity algorithm);
* Windows / RRAS spellings (``Set-VpnServerConfiguration -CustomPolicy``,
  ``Set-VpnConnectionIPsecConfiguration``, VPNv2 CSP ``CryptographySuite``):
  ``EncryptionMethod`` (AES128, DES3, GCMAES128, AES_GCM_128, ...),
  ``IntegrityCheckMethod`` (SHA196, SHA256, SHA384, MD5; Windows uses it as
  integrity *and* PRF, and only as PRF with GCM) and ``DHGroup`` (Group2,
  Group14, ECP256, ECP384, Group24, ...).

:func:`parse_proposal` reads either spelling; :class:`Proposal` renders
strongSwan text, Windows text and transform IDs; :func:`convert_proposal`
turns one spelling into the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ENCR",
    "INTEG",
    "PRF",
    "DH",
    "TRANSFORM_TYPE_NAMES",
    "DH_KE_LENGTH",
    "Algorithm",
    "ALGORITHMS",
    "Proposal",
    "lookup",
    "algorithm_by_id",
    "dh_group_name",
    "parse_proposal",
    "detect_spelling",
    "convert_proposal",
    "to_strongswan",
    "to_windows",
    "to_transform_ids",
    "known_names",
]

# IKEv2 transform types (RFC 7296 section 3.3.2)
ENCR = 1
PRF = 2
INTEG = 3
DH = 4

TRANSFORM_TYPE_NAMES = {ENCR: "encr", PRF: "prf", INTEG: "integ", DH: "dh"}

# Length of the KE payload's key exchange data per DH group (RFC 7296 / 5903)
DH_KE_LENGTH = {
    1: 96,  # modp768
    2: 128,  # modp1024
    5: 192,  # modp1536
    14: 256,  # modp2048
    15: 384,  # modp3072
    16: 512,  # modp4096
    19: 64,  # ecp256 (x | y)
    20: 96,  # ecp384
    21: 132,  # ecp521
    22: 128,  # modp1024s160 (RFC 5114)
    23: 256,  # modp2048s224 (RFC 5114)
    24: 256,  # modp2048s256
    31: 32,  # curve25519
}


@dataclass(frozen=True)
class Algorithm:
    """One algorithm: its profile name, IKEv2 transform and spellings."""

    name: str  # name used in profiles, e.g. "sha256_128"
    type: int  # ENCR / PRF / INTEG / DH
    id: int  # IKEv2 transform ID
    key_length: int | None  # Key Length attribute (bits), None = no attribute
    strongswan: str  # strongSwan proposal keyword, e.g. "sha256"
    windows: str | None  # canonical Windows/RRAS spelling, None = not expressible
    aliases: tuple[str, ...] = field(default=())  # extra accepted spellings
    windows_aliases: tuple[str, ...] = field(default=())
    aead: bool = False

    @property
    def transform(self) -> tuple[int, int, int | None]:
        return (self.type, self.id, self.key_length)


def _a(*args, **kwargs) -> Algorithm:
    return Algorithm(*args, **kwargs)


ALGORITHMS: tuple[Algorithm, ...] = (
    # --- encryption (transform type 1) ---
    _a("des", ENCR, 2, None, "des", "DES"),
    _a("3des", ENCR, 3, None, "3des", "DES3", windows_aliases=("3DES", "TRIPLEDES")),
    _a("aes128", ENCR, 12, 128, "aes128", "AES128", aliases=("aes128cbc", "aes", "aes128_cbc")),
    _a("aes192", ENCR, 12, 192, "aes192", "AES192", aliases=("aes192cbc", "aes192_cbc")),
    _a("aes256", ENCR, 12, 256, "aes256", "AES256", aliases=("aes256cbc", "aes256_cbc")),
    _a("aes128gcm16", ENCR, 20, 128, "aes128gcm16", "GCMAES128",
       aliases=("aes128gcm", "aes128gcm128"), windows_aliases=("AES_GCM_128", "AES128GCM"),
       aead=True),
    _a("aes192gcm16", ENCR, 20, 192, "aes192gcm16", "GCMAES192",
       aliases=("aes192gcm", "aes192gcm128"), windows_aliases=("AES_GCM_192", "AES192GCM"),
       aead=True),
    _a("aes256gcm16", ENCR, 20, 256, "aes256gcm16", "GCMAES256",
       aliases=("aes256gcm", "aes256gcm128"), windows_aliases=("AES_GCM_256", "AES256GCM"),
       aead=True),
    # --- integrity (transform type 3) ---
    _a("md5_96", INTEG, 1, None, "md5", "MD5", aliases=("md5_96",)),
    _a("sha1_96", INTEG, 2, None, "sha1", "SHA196", aliases=("sha", "sha1_96"),
       windows_aliases=("SHA1", "SHA1_96")),
    _a("sha256_128", INTEG, 12, None, "sha256", "SHA256", aliases=("sha2_256", "sha256_128"),
       windows_aliases=("SHA256128", "SHA_256_128", "SHA2_256")),
    _a("sha384_192", INTEG, 13, None, "sha384", "SHA384", aliases=("sha2_384", "sha384_192"),
       windows_aliases=("SHA2_384",)),
    _a("sha512_256", INTEG, 14, None, "sha512", None, aliases=("sha2_512", "sha512_256")),
    # --- PRF (transform type 2) ---
    _a("prfmd5", PRF, 1, None, "prfmd5", None),
    _a("prfsha1", PRF, 2, None, "prfsha1", None),
    _a("prfsha256", PRF, 5, None, "prfsha256", None),
    _a("prfsha384", PRF, 6, None, "prfsha384", None),
    _a("prfsha512", PRF, 7, None, "prfsha512", None),
    # --- Diffie-Hellman groups (transform type 4) ---
    _a("modp768", DH, 1, None, "modp768", "Group1", windows_aliases=("DHGroup1",)),
    _a("modp1024", DH, 2, None, "modp1024", "Group2", windows_aliases=("DHGroup2",)),
    _a("modp1536", DH, 5, None, "modp1536", None, windows_aliases=("Group5", "DHGroup5")),
    _a("modp2048", DH, 14, None, "modp2048", "Group14",
       windows_aliases=("DHGroup14", "DHGroup2048", "Group2048")),
    _a("modp3072", DH, 15, None, "modp3072", None),
    _a("modp4096", DH, 16, None, "modp4096", None),
    _a("ecp256", DH, 19, None, "ecp256", "ECP256"),
    _a("ecp384", DH, 20, None, "ecp384", "ECP384"),
    _a("ecp521", DH, 21, None, "ecp521", None),
    _a("modp1024s160", DH, 22, None, "modp1024s160", None),
    _a("modp2048s224", DH, 23, None, "modp2048s224", None),
    _a("modp2048s256", DH, 24, None, "modp2048s256", "Group24", windows_aliases=("DHGroup24",)),
    _a("curve25519", DH, 31, None, "curve25519", None, aliases=("x25519",)),
)

# integrity algorithm -> PRF of the same hash (strongSwan's implicit PRF, and
# what Windows' IntegrityCheckMethod means as PRF)
_PRF_FOR_INTEG = {
    "md5_96": "prfmd5",
    "sha1_96": "prfsha1",
    "sha256_128": "prfsha256",
    "sha384_192": "prfsha384",
    "sha512_256": "prfsha512",
}
_INTEG_FOR_PRF = {v: k for k, v in _PRF_FOR_INTEG.items()}

_BY_NAME = {a.name: a for a in ALGORITHMS}
_BY_ID = {(a.type, a.id, a.key_length): a for a in ALGORITHMS}

# strongSwan spelling table (lower case keys)
_SS_TOKENS: dict[str, Algorithm] = {}
for _alg in ALGORITHMS:
    for _tok in (_alg.strongswan, _alg.name, *_alg.aliases):
        _SS_TOKENS.setdefault(_tok.lower(), _alg)

# Windows spelling table (upper case keys). In Windows spelling an
# IntegrityCheckMethod token means integrity + PRF, so it maps to the INTEG entry.
_WIN_TOKENS: dict[str, Algorithm] = {}
for _alg in ALGORITHMS:
    for _tok in ((_alg.windows,) if _alg.windows else ()) + _alg.windows_aliases:
        _WIN_TOKENS.setdefault(_tok.upper(), _alg)

# Tokens that exist only in one of the spellings (for auto detection).
_WINDOWS_ONLY = {t for t in _WIN_TOKENS if t.lower() not in _SS_TOKENS}
_STRONGSWAN_ONLY = {t for t in _SS_TOKENS if t.upper() not in _WIN_TOKENS}


def known_names(spelling: str = "all") -> list[str]:
    """Known algorithm tokens for ``spelling`` ('strongswan', 'windows' or 'all')."""
    ss = sorted({a.strongswan for a in ALGORITHMS})
    win = sorted({a.windows for a in ALGORITHMS if a.windows})
    if spelling == "strongswan":
        return ss
    if spelling == "windows":
        return win
    if spelling == "profile":
        return sorted(_BY_NAME)
    return sorted(set(ss) | set(win) | set(_BY_NAME))


def _unknown(token: str, text: str | None, kind: str = "algorithm") -> ValueError:
    where = f" in proposal {text!r}" if text is not None else ""
    return ValueError(
        f"unknown {kind} {token!r}{where}; known strongSwan names: "
        f"{', '.join(known_names('strongswan'))}; known Windows names: "
        f"{', '.join(known_names('windows'))}"
    )


def lookup(token: str) -> Algorithm:
    """Find an algorithm by profile name, strongSwan keyword or Windows spelling."""
    t = token.strip()
    alg = _BY_NAME.get(t) or _SS_TOKENS.get(t.lower()) or _WIN_TOKENS.get(t.upper())
    if alg is None:
        raise _unknown(token, None)
    return alg


def algorithm_by_id(ttype: int, tid: int, key_length: int | None = None) -> Algorithm | None:
    """Reverse lookup of a transform (type, ID, key length); None if not in the table."""
    return _BY_ID.get((ttype, tid, key_length))


def dh_group_name(group: int | None) -> str | None:
    """strongSwan name of a DH group number (``14`` -> ``modp2048``), or ``group<N>``."""
    if group is None:
        return None
    alg = _BY_ID.get((DH, group, None))
    return alg.strongswan if alg else f"group{group}"


@dataclass(frozen=True)
class Proposal:
    """An IKE proposal: ordered algorithms per transform type."""

    encr: tuple[Algorithm, ...]
    integ: tuple[Algorithm, ...]
    prf: tuple[Algorithm, ...]
    dh: tuple[Algorithm, ...]

    @property
    def aead(self) -> bool:
        return bool(self.encr) and all(a.aead for a in self.encr)

    @property
    def dh_groups(self) -> list[int]:
        return [a.id for a in self.dh]

    def strongswan(self) -> str:
        """strongSwan proposal string (PRF omitted when it is implied by integrity)."""
        toks = [a.strongswan for a in self.encr] + [a.strongswan for a in self.integ]
        implied = [_BY_NAME[_PRF_FOR_INTEG[a.name]] for a in self.integ]
        if self.aead or list(self.prf) != implied:
            toks += [a.strongswan for a in self.prf]
        toks += [a.strongswan for a in self.dh]
        return "-".join(toks)

    def windows(self, sep: str = "-") -> str:
        """Windows/RRAS spelling: EncryptionMethod, IntegrityCheckMethod, DHGroup.

        Raises ValueError when Windows cannot express the proposal (several
        algorithms of one type, a PRF that differs from the integrity hash, or
        an algorithm without a Windows name).
        """
        for label, algs in (("encryption", self.encr), ("PRF", self.prf), ("DH group", self.dh)):
            if len(algs) != 1:
                raise ValueError(
                    f"proposal {self.strongswan()!r} has {len(algs)} {label} algorithms; "
                    "the Windows spelling takes exactly one of each"
                )
        prf = self.prf[0]
        if self.aead:
            integ = _BY_NAME.get(_INTEG_FOR_PRF.get(prf.name, ""))
        else:
            if len(self.integ) != 1:
                raise ValueError(
                    f"proposal {self.strongswan()!r} has {len(self.integ)} integrity "
                    "algorithms; the Windows spelling takes exactly one"
                )
            integ = self.integ[0]
            if _PRF_FOR_INTEG.get(integ.name) != prf.name:
                raise ValueError(
                    f"proposal {self.strongswan()!r}: Windows uses IntegrityCheckMethod "
                    f"as PRF, so PRF {prf.strongswan} with integrity {integ.strongswan} "
                    "cannot be expressed"
                )
        toks = []
        for alg in (self.encr[0], integ, self.dh[0]):
            if alg is None or alg.windows is None:
                name = alg.strongswan if alg else prf.strongswan
                raise ValueError(
                    f"proposal {self.strongswan()!r}: {name} has no Windows/RRAS spelling"
                )
            toks.append(alg.windows)
        return sep.join(toks)

    def transform_ids(self) -> list[tuple[int, int, int | None]]:
        """(transform type, transform ID, key length or None) in wire order."""
        return [a.transform for a in (*self.encr, *self.prf, *self.integ, *self.dh)]

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.strongswan()


_SPLIT = re.compile(r"[\s,;/+|]+|-")


def _tokens(text: str) -> list[str]:
    toks = [t for t in _SPLIT.split(text.strip()) if t]
    if not toks:
        raise ValueError(f"empty proposal {text!r}")
    return toks


def detect_spelling(text: str) -> str:
    """'strongswan' or 'windows' for a proposal text.

    Tokens that exist in one spelling only decide; for ambiguous text (e.g.
    ``aes128-sha256-ecp256``) all-lower-case means strongSwan, otherwise Windows.
    """
    toks = _tokens(text)
    win = any(t.upper() in _WINDOWS_ONLY for t in toks)
    ss = any(t.lower() in _STRONGSWAN_ONLY for t in toks)
    if win and not ss:
        return "windows"
    if ss and not win:
        return "strongswan"
    if win and ss:
        # a mix such as "AES128-modp2048": decide by case
        pass
    return "strongswan" if text == text.lower() else "windows"


def _build(encr, integ, prf, dh, text) -> Proposal:
    if not encr:
        raise ValueError(f"proposal {text!r} has no encryption algorithm")
    if not dh:
        raise ValueError(f"proposal {text!r} has no DH group (IKE_SA_INIT needs one)")
    aead = [a.aead for a in encr]
    if any(aead) and not all(aead):
        raise ValueError(f"proposal {text!r} mixes AEAD and non-AEAD encryption")
    if all(aead):
        if integ:
            raise ValueError(
                f"proposal {text!r}: AEAD encryption takes no integrity algorithm "
                "(write the PRF, e.g. prfsha256)"
            )
        if not prf:
            raise ValueError(f"proposal {text!r}: AEAD encryption needs a PRF (e.g. prfsha256)")
    else:
        if not integ:
            raise ValueError(f"proposal {text!r} has no integrity algorithm")
        if not prf:
            prf = [_BY_NAME[_PRF_FOR_INTEG[a.name]] for a in integ]
    dedup = lambda xs: tuple(dict.fromkeys(xs))  # noqa: E731 - keep order, drop repeats
    return Proposal(dedup(encr), dedup(integ), dedup(prf), dedup(dh))


def parse_proposal(text: str | Proposal, spelling: str | None = None) -> Proposal:
    """Parse a proposal written the strongSwan way or the Windows way.

    ``spelling`` forces 'strongswan' or 'windows'; default: auto-detect.
    Unknown tokens raise ValueError naming the token and the known names.
    """
    if isinstance(text, Proposal):
        return text
    if not isinstance(text, str):
        raise TypeError(f"proposal must be a string, not {type(text).__name__}")
    spelling = spelling or detect_spelling(text)
    if spelling not in ("strongswan", "windows"):
        raise ValueError(f"unknown spelling {spelling!r} (use 'strongswan' or 'windows')")
    encr, integ, prf, dh = [], [], [], []
    for tok in _tokens(text):
        if spelling == "windows":
            alg = _WIN_TOKENS.get(tok.upper()) or _SS_TOKENS.get(tok.lower()) or _BY_NAME.get(tok)
        else:
            alg = _SS_TOKENS.get(tok.lower()) or _BY_NAME.get(tok) or _WIN_TOKENS.get(tok.upper())
        if alg is None:
            raise _unknown(tok, text)
        if alg.type == ENCR:
            encr.append(alg)
        elif alg.type == DH:
            dh.append(alg)
        elif alg.type == PRF:
            prf.append(alg)
        elif spelling == "windows" and all(a.aead for a in encr) and encr:
            # Windows: with GCM the IntegrityCheckMethod is the PRF only
            prf.append(_BY_NAME[_PRF_FOR_INTEG[alg.name]])
        else:
            integ.append(alg)
    if spelling == "windows" and encr and all(a.aead for a in encr) and integ:
        # IntegrityCheckMethod written before EncryptionMethod
        prf.extend(_BY_NAME[_PRF_FOR_INTEG[a.name]] for a in integ)
        integ = []
    return _build(encr, integ, prf, dh, text)


def to_strongswan(text: str | Proposal) -> str:
    return parse_proposal(text).strongswan()


def to_windows(text: str | Proposal, sep: str = "-") -> str:
    return parse_proposal(text).windows(sep)


def to_transform_ids(text: str | Proposal) -> list[tuple[int, int, int | None]]:
    return parse_proposal(text).transform_ids()


def convert_proposal(text: str) -> str:
    """Convert a proposal to the *other* spelling (strongSwan <-> Windows)."""
    if detect_spelling(text) == "windows":
        return parse_proposal(text, "windows").strongswan()
    return parse_proposal(text, "strongswan").windows()
