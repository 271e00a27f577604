"""Windows RRAS and NPS provisioning (playbooks/rras.yml, playbooks/nps.yml), as data.

`render` gives every change the roles would send to a host, `checks.judge` compares each
value with profiles/rras.yml and names the requirement a wrong value fails. Nothing here
connects to a host: the plays themselves are not executable on this machine.
"""
from .checks import Check, judge
from .render import Change, render

__all__ = ["Change", "Check", "judge", "render"]
