"""One supervisor for the lab's daemons (charon, ocserv, FreeRADIUS, SoftEther, sshd).

Each daemon is an entry in profiles/daemons.yml (binary, argv, private mounts, readiness
test, log), a config template, and the service module that renders it; `Daemon` does
the rest the same way for all of them: start in a namespace, PID record, ownership
check, stop by PID, status, log tail.
"""
from __future__ import annotations

from .daemon import Daemon, ServiceError
from .process import ProcessId
from .ready import Ready, tcp_open
from .spec import DaemonSpec, spec
from .templates import render

__all__ = ["Daemon", "DaemonSpec", "ProcessId", "Ready", "ServiceError", "render", "spec", "tcp_open"]
