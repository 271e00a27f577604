"""A charon reached over its vici socket: load a connection, initiate it, read the SA.

    >>> with ViciSession("/var/lib/aovpn-lab/aovpn/hosts/client/strongswan/charon.vici") as s:  # doctest: +SKIP
    ...     s.load_conn("cell", {...}); ok, logs, error = s.initiate("cell", "tunnel", timeout=8)

Every call is bounded by a socket timeout: a wedged charon becomes an error, not a hang.
"""
from __future__ import annotations

import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

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
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                sock.connect(self.path)
                break
            except BlockingIOError:
                # EAGAIN: the socket's listen backlog is full (charon accepts when a thread
                # is free; connect(2) on a Unix socket with a timeout does not wait for it)
                if time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                sock.close()
                raise TargetError(f"charon's vici socket {self.path} accepted no connection within "
                                  f"{self.timeout:g} s (its backlog stayed full)",
                                  hint="is charon busy with other clients? `aovpn-lab lab status`") from None
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

    def log_of_initiate(self, ike: str, child: str, timeout: float) -> Iterator[dict[str, str]]:
        """Initiate; charon's log entries of this IKE SA as they come (CommandException: it failed)."""
        request = {"ike": ike, "child": child, "timeout": str(int(timeout * 1000)), "init-limits": "no",
                   "loglevel": "1"}
        for entry in self.s.initiate(request):
            yield {k: _text(v) for k, v in entry.items()}

    def initiate(self, ike: str, child: str, timeout: float) -> tuple[bool, list[dict[str, str]], str]:
        """Initiate and collect charon's log of this IKE SA; (ok, logs, error message)."""
        logs: list[dict[str, str]] = []
        try:
            for entry in self.log_of_initiate(ike, child, timeout):
                logs.append(entry)
        except vici.exception.CommandException as exc:
            return False, logs, str(exc)
        return True, logs, ""

    def start_initiate(self, ike: str, child: str, timeout: float) -> "Initiation":
        """Initiate in a thread; its log entries arrive stamped, while the caller watches the clock."""
        return Initiation(self, ike, child, timeout)

    def list_sa(self, ike: str) -> dict[str, Any] | None:
        for entry in self.s.list_sas({"ike": ike}):
            if ike in entry:
                return _decode(entry[ike])
        return None

    def count_sas(self, state: str) -> int:
        """IKE SAs in this state (a responder's half-open SAs are CONNECTING)."""
        return sum(1 for entry in self.s.list_sas() for sa in entry.values() if _text(sa.get("state")) == state)

    def end_half_open(self, remote_hosts: set[str] | None = None) -> int:
        """Destroy the responder's half-open (CONNECTING) IKE SAs, of these peers only if given;
        how many. Read first, then terminate: a vici stream must end before the next command."""
        ids = [_text(sa.get("uniqueid")) for entry in self.s.list_sas() for sa in entry.values()
               if _text(sa.get("state")) == "CONNECTING"
               and (remote_hosts is None or _text(sa.get("remote-host")) in remote_hosts)]
        for ike_id in ids:
            self._terminate({"ike-id": ike_id})
        return len(ids)

    def terminate(self, ike: str) -> None:
        self._terminate({"ike": ike})

    def _terminate(self, which: dict[str, str]) -> None:
        try:
            for _ in self.s.terminate({**which, "force": "yes", "timeout": "500", "loglevel": "-1"}):
                pass
        except vici.exception.CommandException:
            pass  # already gone (expired, or ended meanwhile)


def _text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, (bytes, bytearray)) else str(v)


def _decode(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return _text(v)


class Initiation:
    """One initiate command running in a thread: charon's log entries for it are queued with
    the time each arrived, so that a caller can time the exchanges and give up on one (by
    terminating the IKE SA through another session, which ends the command)."""

    END = None

    def __init__(self, session: ViciSession, ike: str, child: str, timeout: float) -> None:
        self.entries: queue.Queue = queue.Queue()
        self.ok = False
        self.error = ""
        self.logs: list[dict[str, str]] = []
        self._thread = threading.Thread(target=self._run, args=(session, ike, child, timeout),
                                        name=f"initiate-{ike}", daemon=True)
        self._thread.start()

    def _run(self, session: ViciSession, ike: str, child: str, timeout: float) -> None:
        try:
            for entry in session.log_of_initiate(ike, child, timeout):
                self.entries.put((time.monotonic(), entry))
            self.ok = True
        except vici.exception.CommandException as exc:
            self.error = str(exc)
        except OSError as exc:  # the socket timed out: charon wedged
            self.error = f"charon's vici socket: {exc}"
        finally:
            self.entries.put(self.END)

    def next(self, wait: float) -> tuple[float, dict[str, str]] | None | bool:
        """The next (arrival time, entry); None when the command has ended; False: nothing within `wait` s."""
        try:
            item = self.entries.get(timeout=max(0.0, wait))
        except queue.Empty:
            return False
        if item is not self.END:
            self.logs.append(item[1])
        return item
