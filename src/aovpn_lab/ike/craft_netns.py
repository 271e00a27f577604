"""Run a probe function inside a named network namespace (``/run/netns/NAME``).

The function runs in a fresh thread that first joins the namespace with
setns(2) (CLONE_NEWNET only affects the calling thread), so every socket it
creates lives in that namespace; the rest of the process is untouched.  The
thread ends with the call, so no thread is ever reused in the wrong namespace.
Needs CAP_SYS_ADMIN (root).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import threading
from typing import Any, Callable

__all__ = ["CLONE_NEWNET", "NETNS_DIR", "netns_path", "require_netns", "run_in_netns", "tcp_open"]

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def netns_path(name: str) -> str:
    if not _NAME.match(name) or name in (".", ".."):
        raise ValueError(f"invalid network namespace name {name!r}")
    return os.path.join(NETNS_DIR, name)


def require_netns(name: str | None, error: type[Exception]) -> str:
    """The name of an existing namespace, or `error` (an AovpnError class) saying what to do."""
    if not name:
        raise error("no network namespace given", hint="pass --netns NAME")
    try:
        path = netns_path(name)
    except ValueError as exc:
        raise error(str(exc)) from None
    if not os.path.exists(path):
        raise error(f"network namespace {name!r} does not exist ({path})",
                    hint="create it first (the topology role, or `ip netns add`)")
    return name


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def run_in_netns(name: str, func: Callable[..., Any], /, *args: Any,
                 netns_timeout: float | None = 120.0, **kwargs: Any) -> Any:
    """Call ``func(*args, **kwargs)`` in network namespace ``name``; return its result.

    Exceptions raised by ``func`` (or by entering the namespace) are re-raised
    here.  ``netns_timeout`` bounds the wait (TimeoutError; the worker thread
    is a daemon); all other keyword arguments go to ``func``.
    """
    path = netns_path(name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"network namespace {name!r} does not exist ({path})")
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            _setns(path)
            box["result"] = func(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    t = threading.Thread(target=worker, name=f"netns-{name}", daemon=True)
    t.start()
    t.join(netns_timeout)
    if t.is_alive():
        raise TimeoutError(f"call in netns {name!r} did not finish within {netns_timeout} s")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def tcp_open(netns: str | None, host: str, port: int, timeout: float) -> bool:
    """Does HOST accept a TCP connection on PORT, seen from inside `netns` (None: here)?"""
    import socket

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    return run_in_netns(netns, probe, netns_timeout=timeout + 5) if netns else probe()
