"""FreeRADIUS as the lab's NPS stand-in: EAP-TLS for user tunnels, relayed by the gateway.

`config` renders an instance's raddb tree (and the gateway's eap-radius settings),
`server` runs it in a network namespace by PID (also the Ansible entry point,
``python -m aovpn_lab.radius.server``), `health` checks it with signed RADIUS requests.
"""
from .config import (
           InstancePaths,
           RadiusClient,
           RadiusConfig,
           Secret,
           render,
           strongswan_eap_radius,
)
from .health import HealthResult, check
from .server import FreeRadius, down, read_secret, up

__all__ = ["FreeRadius", "HealthResult", "InstancePaths", "RadiusClient", "RadiusConfig", "Secret", "check",
           "down", "read_secret", "render", "strongswan_eap_radius", "up"]
