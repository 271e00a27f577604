"""A vendor firewall as a condition driver: one netmiko session, changes sent one command at a time.

Every vendor driver is a `VendorDriver`: it says which netmiko device type it is, which
lines the device prints when it rejects a command (`error_pattern`, checked by netmiko's
own send_config_set), and which commands put a condition in place. Commands go one at a
time so a rejection names the exact command; what went through before it is kept, so the
error says what was changed, where it stopped and what was not sent:

    asa (192.0.2.254): the device rejected step 3 `mtu outside 1280`: ERROR: ...
    applied: [...]; failed at: `mtu outside 1280`; left as is: [...] (fix: ...)

Devices that keep a candidate configuration (PAN-OS, Junos) discard it on a rejection,
so there "applied" is empty and the running configuration is untouched.

No vendor firewall runs on this machine: the drivers are tested against recorded device
sessions replayed through netmiko's connection classes (tests/unit/device_replay.py).
"""
from __future__ import annotations

import re
from typing import Any, Callable, ClassVar

from ..errors import AovpnError, TargetError
from ..ssh import target_of
from .base import ConditionDriver, interfaces_of
from .model import OPEN, Condition
from .rules import EffectiveRules


class DeviceRejected(TargetError):
    """A device refused a command; names host, step and what had been changed before."""


def _connect(**params: Any) -> Any:
    from netmiko import ConnectHandler
    return ConnectHandler(**params)


class VendorDriver(ConditionDriver):
    exercised_in_lab = False
    #: netmiko's device_type for this platform.
    device_type: ClassVar[str] = ""
    #: How people name the platform in messages.
    vendor: ClassVar[str] = ""
    #: Lines the device prints when it refuses a command (a regular expression, re.M).
    error_pattern: ClassVar[str] = ""
    #: True where changes go to a candidate configuration that needs a commit.
    candidate: ClassVar[bool] = False
    #: (regular expression on the device's error line, what to do about it); first match wins.
    fixes: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: Conditions the platform has no switch for, with why and where to do them instead.
    unsupported: ClassVar[dict[str, str]] = {}

    #: Replaced in tests by a connector that replays a recorded session.
    connector: Callable[..., Any] = staticmethod(_connect)

    def __init__(self, inventory, host):
        super().__init__(inventory, host)
        #: Commands the last apply() got through, in order (what a person would have to undo).
        self.changed: list[str] = []

    # -- where on the device ------------------------------------------------------
    @property
    def inside(self) -> str:
        return (interfaces_of(self.host, "inside") or ["inside"])[0]

    @property
    def outside(self) -> str:
        return (interfaces_of(self.host, "outside") or ["outside"])[0]

    @property
    def zones(self) -> tuple[str, str]:
        """(inside, outside) security zones, for the platforms whose rules are written per zone pair."""
        z = self.host.var("condition_zones") or {}
        return z.get("inside", "trust"), z.get("outside", "untrust")

    @property
    def default_mtu(self) -> int:
        return int(self.host.var("condition_default_mtu", 1500))

    @property
    def label(self) -> str:
        return f"{self.vendor} {self.host.name} ({self.host.address})"

    # -- session ------------------------------------------------------------------
    def connect_params(self) -> dict[str, Any]:
        t = target_of(self.inventory, self.host)
        params: dict[str, Any] = dict(device_type=self.device_type, host=t.host, port=t.port, username=t.username,
                                      password=t.password, conn_timeout=10)
        if t.key_file:
            params.update(use_keys=True, key_file=t.key_file)
        secret = self.host.var("ansible_become_password")
        if secret:
            params["secret"] = secret
        return params

    def open(self) -> None:
        try:
            self.conn = self.connector(**self.connect_params())
        except AovpnError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TargetError(f"{self.label} is unreachable or refused the session: {first}",
                              hint="check ansible_host, ansible_user and the vaulted ansible_password") from None

    def _session(self) -> Any:
        if self.conn is None:
            raise AovpnError(f"{self.label}: no session", hint="use the driver as a context manager")
        return self.conn

    # -- changes ------------------------------------------------------------------
    def apply(self, condition: Condition) -> None:
        missing = [p.kind for p in condition.parts if p.kind in self.unsupported]
        if missing:
            raise AovpnError(f"{self.label}: unsupported condition '{missing[0]}': {self.unsupported[missing[0]]}",
                             hint=f"run that condition on another edge; {self.vendor} here applies "
                                  f"{', '.join(sorted(self.supports))}")
        super().apply(condition)

    def remove(self) -> None:
        """Take every condition off: the device as `open` leaves it."""
        self.apply(OPEN)

    def send(self, commands: list[str]) -> None:
        conn = self._session()
        self.changed = []
        conn.config_mode(**self.config_mode_args())
        for step, cmd in enumerate(commands, 1):
            try:
                conn.send_config_set([cmd], enter_config_mode=False, exit_config_mode=False,
                                     error_pattern=self.error_pattern, cmd_verify=True)
            except Exception as exc:
                self._rejected(step, cmd, commands, self._device_line(exc))
            self.changed.append(cmd)
        if self.candidate:
            try:
                self.commit(conn)
            except Exception as exc:
                self._rejected(len(commands) + 1, "commit", commands + ["commit"], self._device_line(exc))
        conn.exit_config_mode()

    def config_mode_args(self) -> dict[str, Any]:
        return {}

    def leave_config(self, conn: Any) -> None:
        conn.exit_config_mode()

    def commit(self, conn: Any) -> None:
        conn.commit()

    def discard(self, conn: Any) -> None:
        """Throw the candidate configuration away (devices with a candidate only)."""

    def _device_line(self, exc: Exception) -> str:
        text = str(exc)
        m = re.search(r"matched error: (.*)", text, flags=re.S)
        if m:
            return m.group(1).strip()
        m = re.search(self.error_pattern, text, flags=re.M) if self.error_pattern else None
        if m:
            line = text[m.start():].splitlines()[0]
            return line.strip()
        return (text.strip().splitlines() or [type(exc).__name__])[-1].strip()

    def _rejected(self, step: int, cmd: str, commands: list[str], said: str) -> None:
        conn = self._session()
        said = " ".join(said.split())           # one line, even where the device explains on the next
        not_sent = commands[step:]
        if self.candidate:
            try:
                self.discard(conn)
                conn.exit_config_mode()
                applied = "none (the uncommitted changes were discarded, the running configuration is unchanged)"
            except Exception:
                applied = f"{self.changed} to the candidate configuration, NOT discarded: check the device"
            self.changed = []
        else:
            try:
                self.leave_config(conn)
            except Exception:
                pass
            applied = str(self.changed)
        hint = next((fix for pattern, fix in self.fixes if re.search(pattern, said, flags=re.I)),
                    f"check that this {self.vendor} software accepts `{cmd}` and that {self.host.name}'s "
                    f"ansible_user may configure it (docs/firewalls.md)")
        raise DeviceRejected(f"{self.label}: the device rejected step {step} `{cmd}`: {said}; "
                             f"applied: {applied}; failed at: `{cmd}`; left as is: {not_sent}",
                             hint=hint) from None

    # -- read back ----------------------------------------------------------------
    def show(self, command: str) -> str:
        """What the device prints for an operational command; a refusal is a DeviceRejected."""
        out = self._session().send_command(command, read_timeout=30)
        if self.error_pattern:
            m = re.search(self.error_pattern, out, flags=re.M)
            if m:
                raise DeviceRejected(f"{self.label}: the device rejected `{command}`: "
                                     f"{out[m.start():].splitlines()[0].strip()}",
                                     hint=f"check that this {self.vendor} software has `{command}`")
        return out

    def effective_rules(self) -> EffectiveRules:
        """What the device enforces now, parsed from its own listing."""
        raise NotImplementedError
