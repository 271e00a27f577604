"""The embedded lab's life: preflight, up, down, status.

    >>> inv = inventory.load("inventories/lab")          # doctest: +SKIP
    >>> up(inv); status(inv)["hosts"]["gw1"]["charon"]   # doctest: +SKIP
    True

`up` that fails half-way (or is interrupted) takes down what it created before it
re-raises, so a bad run never leaves namespaces behind.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import sys
import time
from typing import Any

from .. import tool, variants
from ..errors import LabError, PreflightError
from ..inventory import Inventory, LabSpec
from ..service import Daemon
from . import playbook

# What the lab runs, and the Debian package that brings it (for the error message).
REQUIRED_BINARIES = {
    "ip": "iproute2",
    "nft": "nftables",
    "conntrack": "conntrack",
    "/usr/sbin/sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "/usr/lib/ipsec/charon": "strongswan-charon",
    "swanctl": "strongswan-swanctl",
    "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so": "libcharon-extra-plugins",
    "/usr/lib/ipsec/plugins/libstrongswan-openssl.so": "libstrongswan-standard-plugins",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "tcpdump": "tcpdump",
    "ping": "iputils-ping",
    "/usr/libexec/softether/vpnserver/vpnserver": "softether-vpnserver",
    "/usr/sbin/freeradius": "freeradius",
    "/usr/sbin/ocserv": "ocserv",
    "openconnect": "openconnect",
}


def spec_of(inv: Inventory) -> LabSpec:
    if inv.lab is None:
        raise LabError(f"{inv.path} describes no embedded lab (no group 'lab' with lab_prefix)",
                       hint="use --inventory inventories/lab, or `run --inventory` for an external target")
    return inv.lab


def preflight(spec: LabSpec) -> None:
    """Fail early, with the package or setting to fix, when this machine cannot run the lab."""
    if os.geteuid() != 0:
        raise PreflightError("the embedded lab needs root (network namespaces, veth, nftables)",
                             hint="run as root, e.g. `sudo make conformance`")
    missing = sorted({pkg for binary, pkg in REQUIRED_BINARIES.items()
                      if not (os.path.exists(binary) if binary.startswith("/") else shutil.which(binary))})
    if missing:
        raise PreflightError(f"missing Debian package(s): {', '.join(missing)}",
                             hint=f"apt-get install {' '.join(missing)} (or `make setup`)")
    if not os.path.exists("/dev/net/tun"):
        raise PreflightError("/dev/net/tun is missing: strongSwan's userspace IPsec needs the TUN driver",
                             hint="load the tun module (`modprobe tun`)")
    probe = tool.run(["nft", "list", "tables"], step="check nftables")
    if not probe.ok:
        raise PreflightError(f"nftables is not usable here: {probe.error}", hint="the kernel needs nf_tables")
    _check_management_network(spec)


def _check_management_network(spec: LabSpec) -> None:
    for net, dev in _routes():
        if dev != spec.bridge and net.overlaps(spec.management_network):
            raise PreflightError(f"management network {spec.management_network} overlaps route {net} on "
                                 f"{dev} (another lab, or a real network)",
                                 hint="set lab_management_network in the inventory's group_vars/all.yml, or bring "
                                      "this lab up under its own prefix (`aovpn-lab --prefix NAME lab up`)")


# Where a lab under another prefix puts its management network when the inventory's is taken
# (198.18.0.0/15 is the lab's range; the data-plane links use 198.18.1-2.x and 198.18.16.0/20).
SPARE_MANAGEMENT_NETWORKS = tuple(ipaddress.ip_network(f"198.18.{n}.0/24") for n in range(8, 16))


def _routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    out = tool.run(["ip", "-j", "-4", "route", "show"], step="read this machine's routes").check().stdout
    found = []
    for route in json.loads(out or "[]"):
        try:
            found.append((ipaddress.ip_network(route.get("dst", ""), strict=False), route.get("dev", "")))
        except ValueError:  # "default"
            continue
    return found


def with_own_management_network(inv: Inventory) -> Inventory:
    """A lab brought up under `--prefix` beside another one: when the inventory's management
    network is in use, take the first spare one and record it in the lab's state folder,
    where every later command for that prefix finds it (inventory reader). Nothing changes
    for a lab under the inventory's own prefix: its network is the inventory's to choose."""
    from .. import inventory
    from ..inventory.reader import MANAGEMENT_RECORD
    spec = spec_of(inv)
    first = inv.host(spec.hosts[0])
    if first.origin.get("lab_prefix") != "--prefix" or first.origin.get("lab_management_network", "").startswith("lab "):
        return inv
    taken = [(net, dev) for net, dev in _routes() if dev != spec.bridge]
    if not any(net.overlaps(spec.management_network) for net, _ in taken):
        return inv
    free = next((n for n in SPARE_MANAGEMENT_NETWORKS if not any(n.overlaps(t) for t, _ in taken)), None)
    if free is None:
        raise PreflightError(f"no free management network for lab {spec.prefix}: "
                             f"{', '.join(map(str, SPARE_MANAGEMENT_NETWORKS))} are all in use",
                             hint="take another lab down (`aovpn-lab --prefix NAME lab down`)")
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    (spec.state_dir / MANAGEMENT_RECORD).write_text(f"{free}\n")
    print(f"lab {spec.prefix}: management network {spec.management_network} is in use, using {free}",
          file=sys.stderr, flush=True)
    return inventory.load(inv.path, prefix=spec.prefix, vault=inv.vault)


def up(inv: Inventory, *, quiet: bool = False, variant: str | None = None) -> dict[str, Any]:
    spec_of(inv)
    chosen = variants.get(variant)
    if os.geteuid() == 0:
        inv = with_own_management_network(inv)
    spec = spec_of(inv)
    preflight(spec)
    began = time.monotonic()
    try:
        result = playbook.run("lab-up.yml", inv.path, {"lab_prefix": spec.prefix, "gateway_variant": chosen.name,
                                                       "lab_management_network": str(spec.management_network)},
                              quiet=quiet, vault=inv.vault)
        variants.record(spec.state_dir, chosen)
    except BaseException:
        # LabError, Ctrl-C, anything: leave nothing half-created behind.
        try:
            down(inv, quiet=True)
        except Exception:
            pass
        raise
    return {"prefix": spec.prefix, "variant": chosen.name, "seconds": round(time.monotonic() - began, 2),
            "changed": sum(1 for t in result.tasks if t.status == "changed")}


def down(inv: Inventory, *, quiet: bool = False) -> dict[str, Any]:
    spec = spec_of(inv)
    if os.geteuid() != 0:
        raise PreflightError("taking the lab down needs root", hint="run as root")
    began = time.monotonic()
    extra = {"lab_prefix": spec.prefix, "lab_management_network": str(spec.management_network)}
    playbook.run("lab-down.yml", inv.path, extra, quiet=quiet, vault=inv.vault)
    from ..inventory.reader import MANAGEMENT_RECORD
    (spec.state_dir / MANAGEMENT_RECORD).unlink(missing_ok=True)  # the next `lab up` chooses again
    return {"prefix": spec.prefix, "seconds": round(time.monotonic() - began, 2)}


def status(inv: Inventory) -> dict[str, Any]:
    """Which lab hosts and services are up, read from the machine (not from memory)."""
    spec = spec_of(inv)
    listed = tool.run(["ip", "netns", "list"], step="list network namespaces").check().stdout
    present = {line.split()[0] for line in listed.splitlines() if line.strip()}
    hosts: dict[str, Any] = {}
    for name in spec.hosts:
        host = inv.host(name)
        ns = spec.namespace(name)
        hdir = spec.host_dir(name)
        entry: dict[str, Any] = {"namespace": ns, "namespace_up": ns in present,
                                 "management_address": host.address}
        entry["sshd"] = Daemon("sshd", hdir).status()["ready"] is True
        if host.groups & {"ikev2_gateways", "balanced_gateways", "ikev2_clients"}:
            sdir = hdir / "strongswan"
            entry["charon"] = Daemon("charon", sdir).running
            entry["vici_socket"] = (sdir / "charon.vici").is_socket()
        if host.groups & {"sstp_gateways", "balanced_gateways"}:
            from ..sstp.softether import SoftEtherInstance
            entry["softether"] = SoftEtherInstance(hdir / "softether").is_running()
        if "tlsvpn_gateways" in host.groups:
            from ..tlsvpn.ocserv import OcservInstance
            entry["ocserv"] = OcservInstance(hdir / "ocserv").is_running()
        if "radius_servers" in host.groups:
            from ..radius.server import FreeRadius
            entry["freeradius"] = FreeRadius(hdir / "freeradius").pid() is not None
        if "load_balancers" in host.groups:
            entry["haproxy"] = Daemon("haproxy", hdir / "balancer" / "haproxy").running
        if "edges" in host.groups and ns in present:
            entry["ruleset"] = tool.run(["nft", "list", "table", "inet", "aovpn_edge"], netns=ns,
                                        step="list the edge ruleset", host=name).ok
        hosts[name] = entry
    services_up = all(v for h in hosts.values() for k, v in h.items() if isinstance(v, bool))
    return {"prefix": spec.prefix, "state_dir": str(spec.state_dir), "up": services_up,
            "variant": variants.provisioned(spec.state_dir).name if services_up else None, "hosts": hosts}
