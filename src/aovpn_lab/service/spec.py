"""What differs between the lab's daemons, read from profiles/daemons.yml.

    >>> s = spec("ocserv")
    >>> s.argv_for({"state": "/s"}), s.ready_kind
    (['/usr/sbin/ocserv', '-f', '-c', '/s/ocserv.conf'], 'tcp')
    >>> spec("softether").mount_script({"state": "/s"}, ["vpnserver"]).split("; ")[:3]
    ['set -e', 'mount -t tmpfs -o mode=0755 aovpn-softether /run', 'mkdir -p /run/aovpn-softether']
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .. import paths
from ..errors import AovpnError

DAEMONS_FILE = paths.PROFILES / "daemons.yml"
READY_KINDS = ("tcp", "unix", "log")


def _fill(template: str, values: dict[str, Any]) -> str:
    try:
        return str(template).format(**values)
    except KeyError as exc:
        raise AovpnError(f"{DAEMONS_FILE}: {{{exc.args[0]}}} in {template!r} has no value",
                         hint="pass it with the service's settings") from None


@dataclass(frozen=True)
class DaemonSpec:
    name: str
    binary: str
    argv: tuple[str, ...]
    ready: dict[str, Any]
    environment: dict[str, str] = field(default_factory=dict)
    mounts: tuple[dict[str, str], ...] = ()
    log: str | None = None
    console: str = "console.log"
    record: str = "instance.json"
    pidfile: str | None = None
    worker: bool = False
    templates: dict[str, str] = field(default_factory=dict)
    errors: str | None = None

    @property
    def ready_kind(self) -> str:
        return next(iter(self.ready))

    def binary_for(self, values: dict[str, Any]) -> str:
        return _fill(self.binary, values)

    def argv_for(self, values: dict[str, Any]) -> list[str]:
        values = {"binary": self.binary_for(values), **values}
        return [_fill(a, values) for a in self.argv]

    def environment_for(self, values: dict[str, Any]) -> dict[str, str]:
        return {k: _fill(v, values) for k, v in self.environment.items()}

    def ready_for(self, values: dict[str, Any]) -> list[str]:
        value = self.ready[self.ready_kind]
        return [_fill(v, values) for v in (value if isinstance(value, list) else [value])]

    def mount_script(self, values: dict[str, Any], argv: list[str]) -> str:
        """The shell line that makes the private mounts, then execs the daemon."""
        q = shlex.quote
        steps = ["set -e"]
        for mount in self.mounts:
            if "tmpfs" in mount:
                steps.append(f"mount -t tmpfs -o mode=0755 aovpn-{self.name} {q(mount['tmpfs'])}")
            else:
                target = q(_fill(mount["at"], values))
                steps += [f"mkdir -p {target}", f"mount --bind {q(_fill(mount['bind'], values))} {target}"]
        steps.append("exec " + " ".join(q(a) for a in argv))
        return "; ".join(steps)

    def bind_sources(self, values: dict[str, Any]) -> list[Path]:
        return [Path(_fill(m["bind"], values)) for m in self.mounts if "bind" in m]


def _parse(name: str, raw: dict[str, Any]) -> DaemonSpec:
    where = f"{DAEMONS_FILE}: daemons.{name}"
    for key in ("binary", "argv", "ready"):
        if key not in raw:
            raise AovpnError(f"{where} has no {key!r}", hint="see the keys listed at the top of the file")
    ready = raw["ready"]
    if not isinstance(ready, dict) or len(ready) != 1 or next(iter(ready)) not in READY_KINDS:
        raise AovpnError(f"{where}.ready must be one of {', '.join(READY_KINDS)}", hint="e.g. {tcp: ['{listen}:{port}']}")
    for mount in raw.get("mounts") or []:
        if not ("tmpfs" in mount or ("bind" in mount and "at" in mount)):
            raise AovpnError(f"{where}.mounts: {mount!r} is neither {{tmpfs: PATH}} nor {{bind: SRC, at: TARGET}}")
    known = set(DaemonSpec.__dataclass_fields__) - {"name"}
    unknown = set(raw) - known
    if unknown:
        raise AovpnError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}", hint=f"known: {', '.join(sorted(known))}")
    return DaemonSpec(name=name, binary=raw["binary"], argv=tuple(raw["argv"]), ready=dict(ready),
                      environment=dict(raw.get("environment") or {}), mounts=tuple(raw.get("mounts") or ()),
                      log=raw.get("log"), console=raw.get("console", "console.log"),
                      record=raw.get("record", "instance.json"), pidfile=raw.get("pidfile"),
                      worker=bool(raw.get("worker", False)), templates=dict(raw.get("templates") or {}),
                      errors=raw.get("errors"))


@lru_cache(maxsize=None)
def specs(path: Path = DAEMONS_FILE) -> dict[str, DaemonSpec]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    return {name: _parse(name, raw) for name, raw in (data.get("daemons") or {}).items()}


def spec(name: str) -> DaemonSpec:
    known = specs()
    if name not in known:
        raise AovpnError(f"no daemon {name!r} in {DAEMONS_FILE}", hint=f"known: {', '.join(sorted(known))}")
    return known[name]
