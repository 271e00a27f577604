"""A charon reached over its vici socket: load a connection, initiate it, read the SA.

    >>> with ViciSession("/var/lib/aovpn-lab/aovpn/hosts/client/strongswan/charon.vici") as s:  # doctest: +SKIP
    ...     s.load_conn("cell", {...}); ok, logs, error = s.initiate("cell", "tunnel", timeout=8)

Every call is bounded by a socket timeout: a wedged charon becomes an error, not a hang.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import vici

from ..errors import TargetError


class ViciSession:
    def __init__(self, socket_path: str | Path, timeout: float = 15.0):
        self.path = str(socket_path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._session: vici.Session | None = None

    def __enter__(self) -> "ViciSession":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise TargetError(f"charon's vici socket {self.path} does not answer ({exc.strerror or exc})",
                              hint="is charon running? `aovpn-lab lab status`") from None
        self._sock = sock
        self._session = vici.Session(sock)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._sock:
            self._sock.close()
        self._sock = self._session = None

    @property
    def s(self) -> vici.Session:
        assert self._session is not None, "use ViciSession as a context manager"
        return self._session

    def load_cert(self, pem: bytes, flag: str = "NONE") -> None:
        self.s.load_cert({"type": "X509", "flag": flag, "data": pem})

    def load_key(self, pem: bytes) -> None:
        self.s.load_key({"type": "any", "data": pem})

    def load_conn(self, name: str, conf: dict[str, Any]) -> None:
        self.s.load_conn({name: conf})

    def unload_conn(self, name: str) -> None:
        try:
            self.s.unload_conn({"name": name})
        except vici.exception.CommandException:
            pass  # not loaded: nothing to do

    def initiate(self, ike: str, child: str, timeout: float) -> tuple[bool, list[dict[str, str]], str]:
        """Initiate and collect charon's log of this IKE SA; (ok, logs, error message)."""
        logs: list[dict[str, str]] = []
        request = {"ike": ike, "child": child, "timeout": str(int(timeout * 1000)), "init-limits": "no",
                   "loglevel": "1"}
        try:
            for entry in self.s.initiate(request):
                logs.append({k: _text(v) for k, v in entry.items()})
        except vici.exception.CommandException as exc:
            return False, logs, str(exc)
        return True, logs, ""

    def list_sa(self, ike: str) -> dict[str, Any] | None:
        for entry in self.s.list_sas({"ike": ike}):
            if ike in entry:
                return _decode(entry[ike])
        return None

    def count_sas(self, state: str) -> int:
        """IKE SAs in this state (a responder's half-open SAs are CONNECTING)."""
        return sum(1 for entry in self.s.list_sas() for sa in entry.values() if _text(sa.get("state")) == state)

    def terminate(self, ike: str) -> None:
        try:
            for _ in self.s.terminate({"ike": ike, "force": "yes", "timeout": "500", "loglevel": "-1"}):
                pass
        except vici.exception.CommandException:
            pass  # already gone


def _text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, (bytes, bytearray)) else str(v)


def _decode(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return _text(v)
