"""Which process is ours: a PID plus its start time and the inode of its executable.

A PID alone is not an identity: once the daemon exits, the kernel hands the number to
the next process. The start time (field 22 of /proc/PID/stat, in clock ticks since boot)
and the executable's (device, inode) together tell the process we started from any
later holder of its PID, so a recorded PID is only ever signalled while all three match.

    >>> me = ProcessId.of(os.getpid())
    >>> me.alive(), ProcessId(me.pid, me.start_ticks + 1, me.exe_dev, me.exe_ino).alive()
    (True, False)
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start_ticks: int
    exe_dev: int
    exe_ino: int

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        ticks = start_ticks(pid)
        try:
            exe = os.stat(f"/proc/{pid}/exe")
        except OSError:
            return None
        return cls(pid, ticks, exe.st_dev, exe.st_ino) if ticks is not None else None

    @classmethod
    def from_record(cls, entry: object) -> ProcessId | None:
        """A recorded entry, or None when it is not one (an old or foreign record)."""
        try:
            return cls(**entry) if isinstance(entry, dict) else None
        except TypeError:
            return None

    def record(self) -> dict:
        return asdict(self)

    def alive(self) -> bool:
        """Still the very process that was recorded (not a zombie, not a reused PID)."""
        if start_ticks(self.pid) != self.start_ticks or is_zombie(self.pid):
            return False
        return runs(self.pid, (self.exe_dev, self.exe_ino))


def exe_of(path: str | Path) -> tuple[int, int] | None:
    """(device, inode) of an executable file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def runs(pid: int, exe: tuple[int, int] | None) -> bool:
    """Does PID run this executable? /proc/PID/exe resolves in the process's own mounts."""
    return exe is not None and exe_of(f"/proc/{pid}/exe") == exe


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: the fields start after the last ')'
    return raw[raw.rindex(")") + 2:].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] in ("Z", "X")


def children(parent: ProcessId) -> list[ProcessId]:
    """Live children of `parent` that run its executable (forked workers), by PID."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and ppid(int(name)) == parent.pid and not is_zombie(int(name)):
            child = ProcessId.of(int(name))
            if child and (child.exe_dev, child.exe_ino) == (parent.exe_dev, parent.exe_ino):
                found.append(child)
    return sorted(found, key=lambda p: p.pid)
