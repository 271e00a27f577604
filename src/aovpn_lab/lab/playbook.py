"""Running the project's playbooks through ansible-runner, with a live per-task display.

    >>> result = run("lab-up.yml", inventory, extravars={"lab_prefix": "aovpn"})   # doctest: +SKIP
    [lab-up] topology : Create namespaces, links, bridge and sshd ... localhost changed 0.41s

A failed task becomes a LabError naming the host, the task and Ansible's message.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .. import paths
from ..errors import LabError
from ..inventory.vault import PROMPT, Vault
from ..tool import error_line


@dataclass
class TaskResult:
    host: str
    task: str
    role: str
    status: str  # ok | changed | failed | unreachable | skipped
    seconds: float
    message: str = ""


@dataclass
class PlaybookResult:
    playbook: str
    status: str
    seconds: float
    tasks: list[TaskResult] = field(default_factory=list)

    @property
    def failures(self) -> list[TaskResult]:
        return [t for t in self.tasks if t.status in ("failed", "unreachable")]


class Progress:
    """Prints one line per task and host as Ansible reports it."""

    def __init__(self, label: str, stream: TextIO | None = None, quiet: bool = False):
        self.label, self.stream, self.quiet = label, stream or sys.stderr, quiet
        self.started: dict[str, float] = {}
        self.tasks: list[TaskResult] = []
        self.processed: dict[str, int] = {}

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        if kind == "playbook_on_stats":
            self.processed = dict(data.get("processed") or {})
        elif kind == "playbook_on_play_start" and not self.quiet:
            self._print(f"play: {data.get('play', '')}")
        elif kind == "runner_on_start":
            self.started[data.get("task_uuid", "") + data.get("host", "")] = time.monotonic()
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"):
            host = data.get("host", "?")
            began = self.started.pop(data.get("task_uuid", "") + host, time.monotonic())
            res = data.get("res") or {}
            if kind == "runner_on_ok":
                status = "changed" if res.get("changed") else "ok"
            elif kind == "runner_on_failed" and data.get("ignore_errors"):
                status = "ok"
            else:
                status = kind.rsplit("_", 1)[1]
            message = ""
            if status in ("failed", "unreachable"):
                message = task_message(res)
            t = TaskResult(host, data.get("task", ""), data.get("role", ""), status, time.monotonic() - began,
                           message)
            self.tasks.append(t)
            if not self.quiet or status in ("failed", "unreachable"):
                role = f"{t.role} : " if t.role else ""
                self._print(f"  {status:<9} {host:<10} {role}{t.task} ({t.seconds:.2f}s)"
                            + (f"\n            {message.splitlines()[0] if message else ''}" if message else ""))
        return False  # ansible-runner keeps its own event files only when we return True

    def _print(self, line: str) -> None:
        print(f"[{self.label}] {line}", file=self.stream, flush=True)


def run(playbook: str, inventory: Path, extravars: dict[str, Any], *, label: str | None = None,
        quiet: bool = False, stream: TextIO | None = None, timeout: int = 600,
        check_hosts: bool = True, vault: Vault | None = None) -> PlaybookResult:
    """Run playbooks/<playbook> against `inventory`; raise LabError on any failed task.

    `vault`: the secrets the inventory was read with, handed to ansible-playbook the way
    it takes them (a password file by name; a prompted password typed at its prompt,
    never written to disk, argv or the environment)."""
    import ansible_runner  # slow import (~0.3 s): only when a playbook actually runs

    playbook_path = paths.PLAYBOOKS / playbook
    if not playbook_path.is_file():
        raise LabError(f"playbook {playbook_path} is missing", hint="run from a complete checkout of aovpn-lab")
    label = label or playbook.removesuffix(".yml")
    progress = Progress(label, stream=stream, quiet=quiet)
    private = Path(tempfile.mkdtemp(prefix="aovpn-runner-"))
    env = {
        "ANSIBLE_CONFIG": str(paths.ROOT / "ansible.cfg"),
        "ANSIBLE_LIBRARY": str(paths.PLAYBOOKS / "library"),
        "ANSIBLE_ACTION_PLUGINS": str(paths.PLAYBOOKS / "action_plugins"),
        "ANSIBLE_ROLES_PATH": str(paths.PLAYBOOKS / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        # Ansible must find the same interpreter (and so the aovpn_lab package) for local plays.
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    # ansible-runner finds ansible-playbook on PATH: take the one beside this interpreter.
    venv_bin = os.path.dirname(sys.executable)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    began = time.monotonic()
    try:
        r = ansible_runner.run(
            private_data_dir=str(private),
            playbook=str(playbook_path),
            inventory=str(Path(inventory).resolve()),
            extravars={"aovpn_python": sys.executable, **extravars},
            envvars=env,
            quiet=True,
            event_handler=progress,
            timeout=timeout,
            rotate_artifacts=1,
            suppress_env_files=True,  # nor env/passwords: a prompted vault password stays in memory
            **_vault_arguments(vault),
        )
        result = PlaybookResult(playbook, r.status, time.monotonic() - began, progress.tasks)
        output = _stdout_tail(r) if r.status != "successful" and not result.failures else ""
    finally:
        shutil.rmtree(private, ignore_errors=True)
    if result.failures:
        f = result.failures[0]
        first = f.message.splitlines()[0] if f.message else "no message"
        raise LabError(f"{label}: host {f.host}, task '{f.task}' {f.status}: {first}",
                       hint="see the task output above; `aovpn-lab lab down` removes what was created")
    if r.status != "successful":
        raise LabError(f"{label}: ansible-playbook ended '{r.status}' ({output or f'rc={r.rc}'})",
                       hint="check the inventory with `ansible-inventory -i INVENTORY --list`")
    if check_hosts and not progress.processed:
        # ansible-runner reports success when no host matched at all.
        raise LabError(f"{label}: no host of {inventory} matched the playbook's plays",
                       hint="the inventory needs the groups lab, ikev2_gateways, ikev2_clients and edges")
    return result


def _vault_arguments(vault: Vault | None) -> dict[str, Any]:
    """ansible-runner's cmdline (ansible-playbook's vault options) and the answer to its prompt."""
    if vault is None or not vault.args():
        return {}
    out: dict[str, Any] = {"cmdline": " ".join(shlex.quote(a) for a in vault.args())}
    if vault.ask:
        out["passwords"] = {PROMPT: vault.prompted()}
    return out


def task_message(res: dict[str, Any]) -> str:
    """Why a task failed: for a command, the tool's exit status and its own error line.

    Ansible's msg for a failed command is only "non-zero return code"; the tool said why
    on stderr, after whatever warnings it printed first.
    """
    rc = res.get("rc")
    if isinstance(rc, int) and rc != 0 and ("stderr" in res or "stdout" in res):
        cmd = res.get("cmd")
        # command tasks report their argv as a list; shell tasks their script as one string
        name = os.path.basename(str(cmd[0])) if isinstance(cmd, list) and cmd else "shell"
        return f"{name} exited {rc}: {error_line(res.get('stdout') or '', res.get('stderr') or '', rc)}"
    return str(res.get("msg") or res.get("stderr") or res.get("stdout") or "").strip()


def _stdout_tail(r: Any, lines: int = 3) -> str:
    """Ansible's last words when it failed before any task (syntax error, bad inventory)."""
    try:
        text = r.stdout.read()
    except Exception:
        return ""
    return " ".join(line.strip() for line in text.strip().splitlines()[-lines:])
