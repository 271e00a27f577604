#!/usr/bin/python
"""Ansible module: the embedded lab's topology on this machine.

One network namespace per lab host, point-to-point veth links between them, a
management bridge in the root namespace with one veth per host, and one sshd per host
listening on its management address. Idempotent; `state: absent` removes exactly what
`present` created (recorded in <state_dir>/topology.json) and is safe to run twice.

The plays that call it run it with the controller's own interpreter
(``ansible_python_interpreter: "{{ ansible_playbook_python }}"``, the project's venv), so
each sshd is started like every other lab daemon: through aovpn_lab.service (entry
``sshd`` of profiles/daemons.yml: foreground, recorded by PID, start time and executable,
ready when it accepts connections on its management address, restarted only when its
sshd_config changed).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

from aovpn_lab.errors import AovpnError
from aovpn_lab.service import Daemon, render, spec

DOCUMENTATION = r"""
module: lab_topology
short_description: Create or remove the aovpn-lab namespaces, links, bridge and sshds
options:
  state: {type: str, choices: [present, absent], default: present}
  prefix: {type: str, required: true, description: Every created name starts with it.}
  state_dir: {type: path, required: true}
  management: {type: dict, required: true, description: "network (CIDR), gateway (address), ssh_port"}
  hosts: {type: list, elements: dict, description: "hostvars of the lab hosts (inventory_hostname, ansible_host, lab_forwarding, lab_loopback_addresses, lab_routes)"}
  links: {type: list, elements: dict, description: "name, mtu, ends: [{host, interface, address}]"}
"""

IFNAMSIZ = 15


class Topology:
    def __init__(self, module: AnsibleModule):
        self.m = module
        p = module.params
        self.prefix = p["prefix"]
        self.state_dir = p["state_dir"]
        self.mgmt = p["management"] or {}
        # Items are Ansible hostvars of the lab hosts; keep only what the topology needs.
        self.hosts = [{
            "name": h.get("inventory_hostname") or h["name"],
            "mgmt_address": h.get("ansible_host") or h.get("mgmt_address"),
            "forwarding": bool(h.get("lab_forwarding", False)),
            "loopback_addresses": h.get("lab_loopback_addresses") or [],
            "routes": h.get("lab_routes") or [],
        } for h in (p["hosts"] or [])]
        self.links = p["links"] or []
        self.changed = False
        self.check = module.check_mode
        self.actions: list[str] = []

    # -- names ---------------------------------------------------------------
    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def mgmt_veth(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br"

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.state_dir, "topology.json")

    # -- helpers -------------------------------------------------------------
    def run(self, *argv: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
        if ns:
            argv = ("ip", "netns", "exec", ns) + argv
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            # Judged by the exit status; the tool's error is its last stderr line (warnings come first).
            said = [l.strip() for l in (proc.stderr or proc.stdout or "").splitlines() if l.strip()]
            self.m.fail_json(msg=f"`{' '.join(argv)}` exited {proc.returncode}: "
                                 f"{said[-1] if said else 'no output'}", actions=self.actions)
        return proc

    def act(self, what: str, *argv: str, ns: str | None = None) -> None:
        """Run a changing command (skipped in check mode) and remember it."""
        self.changed = True
        self.actions.append(what)
        if not self.check:
            self.run(*argv, ns=ns)

    def namespaces(self) -> set[str]:
        out = self.run("ip", "netns", "list").stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    def link_exists(self, name: str, ns: str | None = None) -> bool:
        argv = ["ip"] + (["-n", ns] if ns else []) + ["link", "show", "dev", name]
        return self.run(*argv, check=False).returncode == 0

    def has_address(self, dev: str, cidr: str, ns: str | None = None) -> bool:
        argv = ["ip"] + (["-n", ns] if ns else []) + ["-j", "addr", "show", "dev", dev]
        proc = self.run(*argv, check=False)
        if proc.returncode != 0:
            return False
        addr, plen = cidr.split("/")
        for link in json.loads(proc.stdout or "[]"):
            for a in link.get("addr_info", []):
                if a.get("local") == addr and str(a.get("prefixlen")) == plen:
                    return True
        return False

    # -- present -------------------------------------------------------------
    def validate(self) -> None:
        for h in self.hosts:
            if len(self.mgmt_veth(h["name"])) > IFNAMSIZ:
                self.m.fail_json(msg=f"lab name '{self.mgmt_veth(h['name'])}' is longer than {IFNAMSIZ} "
                                     f"characters: shorten lab_prefix or host '{h['name']}'")
        for link in self.links:
            for end in link["ends"]:
                if len(end["interface"]) > IFNAMSIZ:
                    self.m.fail_json(msg=f"interface name '{end['interface']}' of link '{link['name']}' "
                                         f"is longer than {IFNAMSIZ} characters")

    def present(self) -> dict:
        self.validate()
        for sub in ("ssh", "hosts"):
            os.makedirs(os.path.join(self.state_dir, sub), exist_ok=True)
        self.write_manifest()  # first, so a crash half-way is still removable
        self.ensure_bridge()
        existing = self.namespaces()
        for h in self.hosts:
            self.ensure_host(h, existing)
        for link in self.links:
            self.ensure_link(link)
        for h in self.hosts:
            self.ensure_routes(h)
        self.ensure_ssh()
        return {"namespaces": [self.ns(h["name"]) for h in self.hosts], "bridge": self.bridge}

    def write_manifest(self) -> None:
        data = {
            "prefix": self.prefix,
            "namespaces": sorted({self.ns(h["name"]) for h in self.hosts} | set(self.read_manifest().get("namespaces", []))),
            "root_links": sorted({self.mgmt_veth(h["name"]) for h in self.hosts} | {self.bridge}
                                 | set(self.read_manifest().get("root_links", []))),
        }
        if not self.check:
            with open(self.manifest_path, "w") as f:
                json.dump(data, f, indent=1)

    def read_manifest(self) -> dict:
        try:
            with open(self.manifest_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def ensure_bridge(self) -> None:
        gw = self.mgmt["gateway"]
        plen = self.mgmt["network"].split("/")[1]
        if not self.link_exists(self.bridge):
            self.act(f"bridge {self.bridge}", "ip", "link", "add", self.bridge, "type", "bridge")
        if not self.check and not self.has_address(self.bridge, f"{gw}/{plen}"):
            self.act(f"address {gw}/{plen} on {self.bridge}", "ip", "addr", "add", f"{gw}/{plen}", "dev", self.bridge)
        self.act_quiet("ip", "link", "set", self.bridge, "up")

    def act_quiet(self, *argv: str, ns: str | None = None) -> None:
        """An idempotent command that never counts as a change (link up, sysctl already set)."""
        if not self.check:
            self.run(*argv, ns=ns)

    def ensure_host(self, h: dict, existing: set[str]) -> None:
        name, ns = h["name"], self.ns(h["name"])
        plen = self.mgmt["network"].split("/")[1]
        if ns not in existing:
            self.act(f"namespace {ns}", "ip", "netns", "add", ns)
        if self.check and ns not in existing:
            return
        self.act_quiet("ip", "-n", ns, "link", "set", "lo", "up")
        veth = self.mgmt_veth(name)
        if not self.link_exists(veth):
            self.act(f"management link {veth}", "ip", "link", "add", veth, "type", "veth",
                     "peer", "name", "mgmt0", "netns", ns)
            self.act_quiet("ip", "link", "set", veth, "master", self.bridge)
        self.act_quiet("ip", "link", "set", veth, "up")
        self.act_quiet("ip", "-n", ns, "link", "set", "mgmt0", "up")
        cidr = f"{h['mgmt_address']}/{plen}"
        if not self.has_address("mgmt0", cidr, ns=ns):
            self.act(f"address {cidr} in {ns}", "ip", "-n", ns, "addr", "add", cidr, "dev", "mgmt0")
        for addr in h.get("loopback_addresses") or []:
            if not self.has_address("lo", addr, ns=ns):
                self.act(f"address {addr} on lo in {ns}", "ip", "-n", ns, "addr", "add", addr, "dev", "lo")
        forwarding = "1" if h.get("forwarding") else "0"
        self.act_quiet("sysctl", "-qw", f"net.ipv4.ip_forward={forwarding}", ns=ns)

    def ensure_link(self, link: dict) -> None:
        a, b = link["ends"]
        ns_a, ns_b = self.ns(a["host"]), self.ns(b["host"])
        if self.check and not (self.link_exists(a["interface"], ns_a)):
            self.changed = True
            self.actions.append(f"link {link['name']}")
            return
        if not self.link_exists(a["interface"], ns_a):
            # A half-created link (one end left after a crash) would block the add.
            if self.link_exists(b["interface"], ns_b):
                self.act(f"stale end of {link['name']}", "ip", "-n", ns_b, "link", "del", b["interface"])
            self.act(f"link {link['name']}", "ip", "link", "add", a["interface"], "netns", ns_a, "type", "veth",
                     "peer", "name", b["interface"], "netns", ns_b)
        mtu = str(link.get("mtu") or 1500)
        for end, ns in ((a, ns_a), (b, ns_b)):
            # MTU on both ends: a veth drops frames larger than the receiving end's MTU.
            self.act_quiet("ip", "-n", ns, "link", "set", end["interface"], "mtu", mtu, "up")
            if not self.has_address(end["interface"], end["address"], ns=ns):
                self.act(f"address {end['address']} in {ns}", "ip", "-n", ns, "addr", "add", end["address"],
                         "dev", end["interface"])

    def ensure_routes(self, h: dict) -> None:
        ns = self.ns(h["name"])
        for r in h.get("routes") or []:
            current = self.run("ip", "-n", ns, "route", "show", r["to"], check=False).stdout if not self.check else ""
            if f"via {r['via']}" not in current:
                self.act(f"route {r['to']} via {r['via']} in {ns}", "ip", "-n", ns, "route", "replace", r["to"],
                         "via", r["via"])

    # -- ssh -----------------------------------------------------------------
    def ensure_ssh(self) -> None:
        ssh_dir = os.path.join(self.state_dir, "ssh")
        key = os.path.join(ssh_dir, "id_ed25519")
        if not os.path.exists(key):
            self.act("lab ssh key", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"aovpn-lab {self.prefix}",
                     "-f", key)
        if self.check:
            return
        shutil.copyfile(key + ".pub", os.path.join(ssh_dir, "authorized_keys"))
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation dir Debian's sshd insists on
        port = str(self.mgmt.get("ssh_port") or 22)
        known, config = [], [f"# aovpn-lab {self.prefix}: written by lab up\n"]
        for h in self.hosts:
            hdir = os.path.join(self.state_dir, "hosts", h["name"])
            os.makedirs(hdir, exist_ok=True)
            hostkey = os.path.join(hdir, "ssh_host_ed25519_key")
            if not os.path.exists(hostkey):
                self.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h["name"], "-f", hostkey)
            cfg = os.path.join(hdir, "sshd_config")
            text = render(spec("sshd").templates["sshd_config"], host=h["name"], namespace=self.ns(h["name"]),
                          address=h["mgmt_address"], port=port, hostkey=hostkey,
                          pidfile=os.path.join(hdir, "sshd.pid"), ssh_dir=ssh_dir)
            with open(cfg, "w") as f:
                f.write(text)
            self.ensure_sshd(h, hdir, port, text)
            with open(hostkey + ".pub") as f:
                pub = " ".join(f.read().split()[:2])
            known.append(f"{h['mgmt_address']} {pub}\n")
            config.append(
                f"Host {h['name']} {h['mgmt_address']}\n  HostName {h['mgmt_address']}\n  Port {port}\n"
                f"  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {ssh_dir}/known_hosts\n  StrictHostKeyChecking yes\n"
                f"  ControlMaster auto\n  ControlPath {ssh_dir}/cm-%C\n  ControlPersist 120s\n"
                "  ConnectTimeout 5\n  LogLevel ERROR\n")
        with open(os.path.join(ssh_dir, "known_hosts"), "w") as f:
            f.writelines(known)
        with open(os.path.join(ssh_dir, "config"), "w") as f:
            f.writelines(config)

    def ensure_sshd(self, h: dict, hdir: str, port: str, config_text: str) -> None:
        """The host's sshd, running with this config (restarted when it changed)."""
        daemon = Daemon("sshd", hdir, self.ns(h["name"]), values={"address": h["mgmt_address"], "port": port})
        digest = hashlib.sha256(config_text.encode()).hexdigest()
        try:
            started = daemon.ensure(digest, timeout=5.0)
        except AovpnError as exc:
            self.m.fail_json(msg=f"sshd of lab host {h['name']}: {exc}; see "
                                 f"`ip netns exec {self.ns(h['name'])} /usr/sbin/sshd -t -f {hdir}/sshd_config`")
        if started["changed"]:
            self.changed = True
            self.actions.append(f"sshd on {h['name']}")

    # -- absent --------------------------------------------------------------
    def absent(self) -> dict:
        manifest = self.read_manifest()
        namespaces = set(manifest.get("namespaces", [])) | {self.ns(h["name"]) for h in self.hosts}
        root_links = set(manifest.get("root_links", [])) | {self.mgmt_veth(h["name"]) for h in self.hosts} | {self.bridge}
        # Only names this lab owns: a stray entry in the manifest must not reach beyond the prefix.
        namespaces = {n for n in namespaces if n.startswith(self.prefix + "-")}
        root_links = {n for n in root_links if n.startswith(self.prefix + "-")}
        present = self.namespaces()
        removed = []
        if not self.check:
            kill_namespace_processes(sorted(namespaces & present))
        for ns in sorted(namespaces & present):
            self.act(f"namespace {ns}", "ip", "netns", "del", ns)
            removed.append(ns)
        for link in sorted(root_links):
            # veths vanish with their namespace, but asynchronously: delete explicitly so
            # a quick `lab up` afterwards does not trip over them.
            if self.link_exists(link):
                self.remove_link(link)
                removed.append(link)
        if os.path.isdir(self.state_dir):
            self.changed = True
            self.actions.append(f"state {self.state_dir}")
            if not self.check:
                shutil.rmtree(self.state_dir, ignore_errors=True)
        return {"removed": removed}

    def remove_link(self, link: str) -> None:
        """Delete a root-namespace link that may be vanishing on its own meanwhile (the
        kernel tears a veth down when its peer's namespace goes): a failed delete of a
        link that is gone afterwards reached the goal, one still there is an error."""
        self.changed = True
        self.actions.append(f"link {link}")
        if self.check:
            return
        if self.run("ip", "link", "del", link, check=False).returncode != 0 and self.link_exists(link):
            self.run("ip", "link", "del", link)


def kill_namespace_processes(namespaces: list[str]) -> None:
    """TERM, then KILL, every process inside the namespaces: leftovers keep them alive.
    All namespaces at once, so their daemons shut down in parallel."""
    def pids() -> list[int]:
        found = []
        for ns in namespaces:
            proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10)
            if proc.returncode == 0:  # a namespace already gone has no processes left
                found += [int(p) for p in proc.stdout.split()]
        return found

    # Lab daemons need no graceful exit: a short grace, then KILL.
    for sig, wait in ((signal.SIGTERM, 0.5), (signal.SIGKILL, 1.0)):
        left = pids()
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pids():
            time.sleep(0.02)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            prefix=dict(type="str", required=True),
            state_dir=dict(type="path", required=True),
            management=dict(type="dict", required=False, default={}),
            hosts=dict(type="list", elements="dict", default=[]),
            links=dict(type="list", elements="dict", default=[]),
        ),
        supports_check_mode=True,
    )
    if os.geteuid() != 0:
        module.fail_json(msg="lab_topology needs root (network namespaces, veth, bridge)")
    topo = Topology(module)
    result = topo.present() if module.params["state"] == "present" else topo.absent()
    module.exit_json(changed=topo.changed, actions=topo.actions, **result)


if __name__ == "__main__":
    main()
