"""The one shape of the lab roles' Ansible actions (playbooks/action_plugins/).

Each action checks its arguments with Ansible's own argument spec (the checks a module
gets), does its work in Ansible's worker on the controller, and turns the project's own
errors into one failed task with a one-line message; in check mode it is skipped unless
it can tell what it would change (as Ansible skips a module without check-mode support).
The service actions (SoftEther, ocserv) share more: `present` keeps an instance running
with its users, `absent` stops it by its recorded PIDs (aovpn_lab.service.cli.down).

Passwords are `no_log` in the spec and handed to the instance in memory; no result
carries one.
"""
from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleActionSkip
from ansible.plugins.action import ActionBase

from ..errors import AovpnError


class LabAction(ActionBase):
    """An action whose host is the controller itself: no connection, no file transfer."""

    TRANSFERS_FILES = False
    _requires_connection = False
    SPEC: dict[str, Any] = {}
    REQUIRED_IF: list[tuple] = []
    # Only an action that can tell what it would change runs in check mode (topology);
    # the others are skipped there, as Ansible skips a module without check-mode support.
    SUPPORTS_CHECK_MODE = False

    def act(self, params: dict[str, Any]) -> dict[str, Any]:
        """The work; what it returns goes into the task's result."""
        raise NotImplementedError

    def failure(self, params: dict[str, Any]) -> str:
        """What a project error message is prefixed with (which service, where)."""
        return self._task.action

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, params = self.validate_argument_spec(argument_spec=self.SPEC, required_if=self.REQUIRED_IF)
        if self._task.check_mode and not self.SUPPORTS_CHECK_MODE:
            raise AnsibleActionSkip(f"check mode: {self._task.action} only knows what it changes by doing it")
        try:
            result.update(self.act(params))
        except AovpnError as exc:
            raise AnsibleActionFail(f"{self.failure(params)}: {exc}") from None
        return result


USERS = dict(type="list", elements="dict", default=[], options=dict(
    name=dict(type="str", required=True), password=dict(type="str", required=True, no_log=True)))

SERVICE_SPEC: dict[str, Any] = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    purge=dict(type="bool", default=False),
    state_dir=dict(type="path", required=True),
    netns=dict(type="str"), cert=dict(type="path"), key=dict(type="path"),
    users=USERS,
)


class ServiceAction(LabAction):
    """A lab gateway daemon with password users, kept running in a host's namespace."""

    NAME = "service"
    USERS_SETTING = "users"  # where the inventory sets them, for the message when there are none
    REQUIRED_IF = [("state", "present", ("netns", "cert", "key"))]

    def instance(self, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def up(self, instance: Any, users: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def failure(self, params: dict[str, Any]) -> str:
        return f"{self.NAME} (netns {params['netns'] or '-'})"

    def act(self, params: dict[str, Any]) -> dict[str, Any]:
        from ..service.cli import down
        if params["state"] == "absent":
            return down(self.instance(params), purge=params["purge"])
        if not params["users"]:
            raise AnsibleActionFail(f"{self.USERS_SETTING} is empty: {self.NAME} needs a user")
        return self.up(self.instance(params), {u["name"]: u["password"] for u in params["users"]}, params)
