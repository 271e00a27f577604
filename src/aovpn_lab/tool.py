"""Running an external tool and judging what it did by its exit status.

Every command the project runs (nft, conntrack, ip, swanctl, vpncmd, openssl, radiusd, ...)
is judged the same way: exit status 0 is success, whatever the tool printed on stderr (many
print warnings there: swanctl names every plugin it could not load and still works); any
other status is a failure, and the message names the host, the step and the tool's own
error line. A word in the output never decides success.

    >>> r = run(["sh", "-c", "echo 'plugin x: failed to load' >&2"], step="load")
    >>> r.ok, r.stderr.strip()
    (True, 'plugin x: failed to load')
    >>> run(["sh", "-c", "echo 'Error: no such table' >&2; exit 1"], step="list", host="edge").check()
    Traceback (most recent call last):
    ...
    aovpn_lab.tool.ToolError: edge: list: sh exited 1: Error: no such table
"""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from typing import Sequence

from .errors import AovpnError


# nftables tables that several sessions change and read at once (the lab edge's, under
# --workers one session per client; a lab gateway's firewall) are used one nft at a time,
# each under this lock (flock(1), util-linux): a listing or `reset counter` that another
# session's commit interrupts fails with EINTR ("Interrupted system call", the kernel's
# NLM_F_DUMP_INTR).
NFT_LOCK = "/tmp/aovpn-lab-nft.lock"
NFT = ("flock", NFT_LOCK, "nft")  # argv of an nft that waits its turn


class ToolError(AovpnError):
    """An external tool ran and exited non-zero (or could not be run at all)."""


def error_line(stdout: str, stderr: str, returncode: int | None) -> str:
    """The line a failed tool's error is in: its last non-empty stderr line.

    Tools report the error that made them exit last (warnings printed on the way come
    first); a tool silent on stderr gets its last stdout line, then its exit status. A
    tool that points at the part of its input it refused (nft: the message, the input
    line, then a line of ^ and ~ under the part) gets its message and that part.

    >>> error_line("", "plugin 'ldap': failed to load\\nloading connection 'gw' failed: invalid\\n", 1)
    "loading connection 'gw' failed: invalid"
    >>> error_line("", "", 3)
    'exit status 3, no output'
    >>> error_line("", "Error: No such file or directory\\nadd rule inet t c drop; reset counter inet t x\\n"
    ...            "                        ^^^^^^^^^^^^^^^^^^^^^^\\n", 1)
    'Error: No such file or directory: reset counter inet t x'
    """
    for text in (stderr, stdout):
        raw = [line.rstrip() for line in (text or "").splitlines() if line.strip()]
        if not raw:
            continue
        if len(raw) >= 3 and _MARKER.fullmatch(raw[-1].strip()):
            start, end = len(raw[-1]) - len(raw[-1].lstrip()), len(raw[-1])
            return f"{raw[-3].strip()}: {raw[-2][start:end].strip()}"
        return raw[-1].strip()
    return f"exit status {returncode}, no output"


_MARKER = re.compile(r"\^[\^~]*|~+\^[\^~]*")  # nft's (and most parsers') pointer under the refused input


@dataclass(frozen=True)
class ToolResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    step: str = ""
    host: str = "localhost"
    ok_codes: tuple[int, ...] = (0,)  # the exit statuses the tool documents as success for this use

    @property
    def ok(self) -> bool:
        return self.returncode in self.ok_codes

    @property
    def tool(self) -> str:
        """The tool's name, past wrappers such as `ip netns exec NS`."""
        argv = list(self.argv)
        if argv[:3] == ["ip", "netns", "exec"] and len(argv) > 4:
            argv = argv[4:]
        return os.path.basename(argv[0]) if argv else "?"

    @property
    def error(self) -> str:
        return error_line(self.stdout, self.stderr, self.returncode)

    def message(self) -> str:
        return f"{self.host}: {self.step or ' '.join(self.argv)}: {self.tool} exited {self.returncode}: {self.error}"

    def check(self, hint: str | None = None) -> "ToolResult":
        """Self when the tool succeeded; otherwise a ToolError naming host, step and error line."""
        if not self.ok:
            raise ToolError(self.message(), hint=hint)
        return self


def run(argv: Sequence[str], *, step: str, host: str = "localhost", netns: str | None = None,
        timeout: float = 30, input: str | None = None, env: dict[str, str] | None = None,
        hint: str | None = None, ok_codes: tuple[int, ...] = (0,)) -> ToolResult:
    """Run a tool to completion (inside `netns` when given); never raises for its exit status.
    `ok_codes`: the exit statuses that mean success (a tool may document more than 0).

    A tool that is not installed or does not finish in time is a ToolError: there is no
    exit status to judge.
    """
    full = (["ip", "netns", "exec", netns] if netns else []) + list(argv)
    try:
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input, env=env,
                              stdin=None if input is not None else subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise ToolError(f"{host}: {step}: {full[0]} is not installed", hint=hint) from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{host}: {step}: {argv[0]} did not finish within {timeout:g} s", hint=hint) from None
    return ToolResult(tuple(full), proc.returncode, proc.stdout or "", proc.stderr or "", step, host, ok_codes)
