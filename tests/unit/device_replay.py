"""Replays a recorded device session through netmiko's own connection classes.

A recording (tests/data/devices/<vendor>/<name>.txt) is what the device's terminal shows:
each line that starts with a prompt is a command typed there, the lines after it are what
the device printed, up to the next prompt. `Replay` is a netmiko Channel that plays the
device's side: a command written that is the next one recorded gets its echo, its output
and the next prompt back; a bare newline gets the current prompt again. So
`ConnectHandler(..., auto_connect=False)` with this channel runs netmiko's real session
preparation, prompt finding, send_command/send_config_set and error_pattern checks.

A command typed where the recording has another is kept in `unexpected` (and answered with
nothing, so netmiko times out instead of going on); the tests assert both `unexpected`
and `unplayed` are empty, which checks the exact commands sent, in order.

A recorded line `Password: ********` stands for a secret: whatever is written there is
accepted and not echoed, as a device does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from netmiko.channel import Channel

DEVICES = Path(__file__).resolve().parents[1] / "data" / "devices"
SECRET = "********"


@dataclass(frozen=True)
class Exchange:
    prompt: str
    command: str
    output: str       # what the device printed after the echo, up to and including the next prompt


def parse(text: str, prompt: str) -> tuple[str, list[Exchange]]:
    """The login text (up to the first prompt) and the exchanges of a recording."""
    pattern = re.compile(prompt)
    login: list[str] = []
    steps: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        m = pattern.match(line)
        if m:
            if steps:
                steps[-1][2].append(m.group(0))
            else:
                login.append(m.group(0))
            if line[m.end():].strip():
                steps.append((m.group(0), line[m.end():].strip(), []))
        elif steps:
            steps[-1][2].append(line + "\n")
        else:
            login.append(line + "\n")
    if not steps or not steps[-1][2] or not pattern.match(steps[-1][2][-1]):
        raise ValueError("a recording ends with the device's prompt")
    exchanges = []
    for prompt_text, command, lines in steps:
        # Prompt-only lines inside an output (a bare newline typed) are kept as printed.
        exchanges.append(Exchange(prompt_text, command, "".join(
            line if line.endswith("\n") or i == len(lines) - 1 else line + "\n" for i, line in enumerate(lines))))
    return "".join(login), exchanges


class Replay(Channel):
    """The device's side of a recorded session, as a netmiko channel."""

    def __init__(self, text: str, prompt: str):
        self.login, self.exchanges = parse(text, prompt)
        self.position = 0
        self.prompt = re.compile(prompt).match(self.login.splitlines()[-1]).group(0)
        self.pending = self.login
        self.partial = ""
        self.sent: list[str] = []
        self.unexpected: list[str] = []

    @classmethod
    def of(cls, vendor: str, *names: str, prompt: str) -> "Replay":
        """The recordings `names` of `vendor`, played one after the other (e.g. login, then a change)."""
        return cls("".join((DEVICES / vendor / f"{name}.txt").read_text() for name in names), prompt)

    @property
    def unplayed(self) -> list[str]:
        return [e.command for e in self.exchanges[self.position:]]

    def write_channel(self, out_data: str) -> None:
        self.partial += out_data.replace("\r\n", "\n").replace("\r", "\n")
        while "\n" in self.partial:
            line, self.partial = self.partial.split("\n", 1)
            self._typed(line)

    def _typed(self, line: str) -> None:
        if self.unexpected:
            return        # out of step: stay silent so the session fails where it went wrong
        nxt = self.exchanges[self.position] if self.position < len(self.exchanges) else None
        if nxt and nxt.command == SECRET:
            self.position += 1
            self.pending += "\n" + nxt.output
            self.prompt = _prompt_of(nxt.output)
        elif nxt and line.strip() == nxt.command:
            self.position += 1
            self.sent.append(nxt.command)
            self.pending += line + "\n" + nxt.output
            self.prompt = _prompt_of(nxt.output)
        elif not line.strip() and line == "":
            self.pending += "\n" + self.prompt
        elif line.strip() in ("exit", "quit", "logout", "end") and nxt is None:
            pass          # netmiko's disconnect after the recording ended
        else:
            self.unexpected.append(line)

    def read_buffer(self) -> str:
        return self.read_channel()

    def read_channel(self) -> str:
        out, self.pending = self.pending, ""
        return out


def _prompt_of(output: str) -> str:
    """What the device prints again for a bare Enter: its prompt, with the Junos/PAN-OS '[edit]' line above it."""
    lines = output.splitlines()
    if len(lines) > 1 and re.match(r"^\[edit.*\]$", lines[-2]):
        return lines[-2] + "\n" + lines[-1]
    return lines[-1]


def connector(replay: Replay):
    """A stand-in for netmiko.ConnectHandler: the real connection class, on the replayed channel."""
    from netmiko import ConnectHandler

    def connect(**params):
        params = {**params, "auto_connect": False}
        conn = ConnectHandler(**params)
        conn.channel = replay
        conn.remote_conn = replay
        conn._try_session_preparation()
        return conn
    return connect


def forbid_connections(monkeypatch) -> None:
    """Make any real SSH connection fail loudly: a driver whose connector was not replaced must not reach out."""
    import paramiko

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried a real SSH connection; give the driver a replay connector")
    monkeypatch.setattr(paramiko.SSHClient, "connect", refuse)
    monkeypatch.setattr("aovpn_lab.conditions.vendor._connect", refuse)


def edge_inventory(tmp_path: Path, driver: str, inside: str, outside: str, **extra) -> Path:
    """A one-edge inventory file for `driver` (documentation addresses, no password)."""
    import yaml
    host = {"ansible_host": "192.0.2.254", "ansible_user": "aovpn-test", "condition_driver": driver,
            "condition_interfaces": {"inside": [inside], "outside": [outside]}, **extra}
    path = tmp_path / "edge.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"edges": {"hosts": {"fw": host}}}}}))
    return path
