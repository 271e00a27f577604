"""Ansible action: the embedded lab's topology on this machine.

One network namespace per lab host, point-to-point veth links between them, a
management bridge in the root namespace with one veth per host, and one sshd per host
listening on its management address. Idempotent; `state: absent` removes exactly what
`present` created (recorded in <state_dir>/topology.json) and is safe to run twice.

An action, not a module: the topology is the controller's own machine, so it runs in
Ansible's worker on the controller (playbooks/action_plugins/README.md). Each sshd is
started like every other lab daemon: through aovpn_lab.service (entry ``sshd`` of
profiles/daemons.yml: foreground, recorded by PID, start time and executable, ready when
it accepts connections on its management address, restarted only when its sshd_config
changed).
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleActionFail

from aovpn_lab.errors import AovpnError
from aovpn_lab.lab.action import LabAction
from aovpn_lab.service import Daemon, render, spec

DOCUMENTATION = r"""
action: lab_topology
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
    def __init__(self, p: dict, check: bool):
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
        self.links_wanted = p["links"] or []
        self.changed = False
        self.check = check
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
    def fail(self, msg: str) -> None:
        """End the task as failed, with what was done before the failure."""
        raise AnsibleActionFail(msg, result={"changed": self.changed, "actions": self.actions})

    def run(self, *argv: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
        if ns:
            argv = ("ip", "netns", "exec", ns) + argv
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            # Judged by the exit status; the tool's error is its last stderr line (warnings come first).
            said = [l.strip() for l in (proc.stderr or proc.stdout or "").splitlines() if l.strip()]
            self.fail(f"`{' '.join(argv)}` exited {proc.returncode}: {said[-1] if said else 'no output'}")
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

    def links(self, ns: str | None = None) -> dict[str, set[str]]:
        """Every link of a namespace (the root one when None) with its addresses (CIDR):
        one query answers every "does it exist" of the namespace."""
        proc = self.run("ip", *(["-n", ns] if ns else []), "-j", "addr", "show")
        return {link["ifname"]: {f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])}
                for link in json.loads(proc.stdout or "[]")}

    def routes(self, ns: str) -> set[tuple[str, str]]:
        """(destination network, gateway) of every route in the namespace's main table."""
        proc = self.run("ip", "-n", ns, "-j", "route", "show")
        out = set()
        for r in json.loads(proc.stdout or "[]"):
            dst = "0.0.0.0/0" if r.get("dst") == "default" else r.get("dst", "")
            if r.get("gateway") and dst:
                out.add((str(ipaddress.ip_network(dst, strict=False)), r["gateway"]))
        return out

    # -- present -------------------------------------------------------------
    def validate(self) -> None:
        for h in self.hosts:
            if len(self.mgmt_veth(h["name"])) > IFNAMSIZ:
                self.fail(f"lab name '{self.mgmt_veth(h['name'])}' is longer than {IFNAMSIZ} "
                          f"characters: shorten lab_prefix or host '{h['name']}'")
        for link in self.links_wanted:
            for end in link["ends"]:
                if len(end["interface"]) > IFNAMSIZ:
                    self.fail(f"interface name '{end['interface']}' of link '{link['name']}' "
                              f"is longer than {IFNAMSIZ} characters")

    def present(self) -> dict:
        """Read what exists (one query per namespace), then make the rest in a few `ip -batch`
        runs: the root namespace's (namespaces, bridge, veth pairs), then one per namespace
        (addresses, links up, MTU, routes). A lab host costs a handful of processes, not dozens."""
        self.validate()
        for sub in ("ssh", "hosts"):
            os.makedirs(os.path.join(self.state_dir, sub), exist_ok=True)
        self.write_manifest()  # first, so a crash half-way is still removable
        existing = self.namespaces()
        root = self.links()
        plen = self.mgmt["network"].split("/")[1]
        # Root: the bridge and the namespaces first (the veth pairs below go into them).
        first = Batch(self)
        if self.bridge not in root:
            first.change(f"bridge {self.bridge}", "link", "add", self.bridge, "type", "bridge")
        bridge_cidr = f"{self.mgmt['gateway']}/{plen}"
        if bridge_cidr not in root.get(self.bridge, set()):
            first.change(f"address {bridge_cidr} on {self.bridge}", "addr", "add", bridge_cidr, "dev", self.bridge)
        first.quiet("link", "set", self.bridge, "up")
        for h in self.hosts:
            if self.ns(h["name"]) not in existing:
                first.change(f"namespace {self.ns(h['name'])}", "netns", "add", self.ns(h["name"]))
        first.run()
        if self.check and any(self.ns(h["name"]) not in existing for h in self.hosts):
            return self.result()
        # What each namespace has (a namespace made just now has only lo).
        names = [self.ns(h["name"]) for h in self.hosts]
        inside = {ns: self.links(ns) if ns in existing else {} for ns in names}
        pairs = Batch(self)
        per_ns = {ns: Batch(self, ns) for ns in inside}
        for h in self.hosts:
            self.ensure_host(h, root, inside, pairs, per_ns[self.ns(h["name"])], plen)
        for link in self.links_wanted:
            self.ensure_link(link, inside, pairs, per_ns)
        for h in self.hosts:
            self.ensure_routes(h, existing, per_ns[self.ns(h["name"])])
        pairs.run()
        for batch in per_ns.values():
            batch.run()
        for h in self.hosts:
            self.act_quiet("sysctl", "-qw", f"net.ipv4.ip_forward={'1' if h.get('forwarding') else '0'}",
                           ns=self.ns(h["name"]))
        self.ensure_ssh()
        return self.result()

    def result(self) -> dict:
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

    def act_quiet(self, *argv: str, ns: str | None = None) -> None:
        """An idempotent command that never counts as a change (link up, sysctl already set)."""
        if not self.check:
            self.run(*argv, ns=ns)

    def ensure_host(self, h: dict, root: dict, inside: dict, pairs: "Batch", own: "Batch", plen: str) -> None:
        ns, veth = self.ns(h["name"]), self.mgmt_veth(h["name"])
        have = inside[ns]
        own.quiet("link", "set", "lo", "up")
        if veth not in root:
            pairs.change(f"management link {veth}", "link", "add", veth, "type", "veth", "peer", "name", "mgmt0",
                         "netns", ns)
            pairs.quiet("link", "set", veth, "master", self.bridge)
        pairs.quiet("link", "set", veth, "up")
        own.quiet("link", "set", "mgmt0", "up")
        cidr = f"{h['mgmt_address']}/{plen}"
        if cidr not in have.get("mgmt0", set()):
            own.change(f"address {cidr} in {ns}", "addr", "add", cidr, "dev", "mgmt0")
        for addr in h.get("loopback_addresses") or []:
            if addr not in have.get("lo", set()):
                own.change(f"address {addr} on lo in {ns}", "addr", "add", addr, "dev", "lo")

    def ensure_link(self, link: dict, inside: dict, pairs: "Batch", per_ns: dict) -> None:
        a, b = link["ends"]
        ns_a, ns_b = self.ns(a["host"]), self.ns(b["host"])
        if a["interface"] not in inside[ns_a]:
            # A half-created link (one end left after a crash) would block the add.
            if b["interface"] in inside[ns_b]:
                self.act(f"stale end of {link['name']}", "ip", "-n", ns_b, "link", "del", b["interface"])
                inside[ns_b] = {k: v for k, v in inside[ns_b].items() if k != b["interface"]}
            pairs.change(f"link {link['name']}", "link", "add", a["interface"], "netns", ns_a, "type", "veth",
                         "peer", "name", b["interface"], "netns", ns_b)
        mtu = str(link.get("mtu") or 1500)
        for end, ns in ((a, ns_a), (b, ns_b)):
            # MTU on both ends: a veth drops frames larger than the receiving end's MTU.
            per_ns[ns].quiet("link", "set", end["interface"], "mtu", mtu, "up")
            if end["address"] not in inside[ns].get(end["interface"], set()):
                per_ns[ns].change(f"address {end['address']} in {ns}", "addr", "add", end["address"],
                                  "dev", end["interface"])

    def ensure_routes(self, h: dict, existing: set[str], own: "Batch") -> None:
        ns = self.ns(h["name"])
        wanted = h.get("routes") or []
        current = self.routes(ns) if wanted and ns in existing else set()
        for r in wanted:
            if (str(ipaddress.ip_network(r["to"], strict=False)), r["via"]) not in current:
                own.change(f"route {r['to']} via {r['via']} in {ns}", "route", "replace", r["to"], "via", r["via"])

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
        sshds: list[tuple[dict, str, str]] = []
        for h in self.hosts:
            hdir = os.path.join(self.state_dir, "hosts", h["name"])
            os.makedirs(hdir, exist_ok=True)
            hostkey = os.path.join(hdir, "ssh_host_ed25519_key")
            if not os.path.exists(hostkey):
                self.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h["name"], "-f", hostkey)
            home = os.path.join(hdir, "home")
            os.makedirs(home, mode=0o700, exist_ok=True)
            cfg = os.path.join(hdir, "sshd_config")
            text = render(spec("sshd").templates["sshd_config"], host=h["name"], namespace=self.ns(h["name"]),
                          address=h["mgmt_address"], port=port, hostkey=hostkey,
                          pidfile=os.path.join(hdir, "sshd.pid"), ssh_dir=ssh_dir, home=home)
            with open(cfg, "w") as f:
                f.write(text)
            sshds.append((h, hdir, text))
            with open(hostkey + ".pub") as f:
                pub = " ".join(f.read().split()[:2])
            known.append(f"{h['mgmt_address']} {pub}\n")
            config.append(
                f"Host {h['name']} {h['mgmt_address']}\n  HostName {h['mgmt_address']}\n  Port {port}\n"
                f"  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {ssh_dir}/known_hosts\n  StrictHostKeyChecking yes\n"
                f"  ControlMaster auto\n  ControlPath {ssh_dir}/cm-%C\n  ControlPersist 120s\n"
                "  ConnectTimeout 5\n  LogLevel ERROR\n")
        self.ensure_sshds(sshds, port)
        with open(os.path.join(ssh_dir, "known_hosts"), "w") as f:
            f.writelines(known)
        with open(os.path.join(ssh_dir, "config"), "w") as f:
            f.writelines(config)

    def ensure_sshds(self, sshds: list[tuple[dict, str, str]], port: str) -> None:
        """Each host's sshd, running with its config (restarted when it changed). All at
        once: each start mostly waits for its daemon to accept connections."""
        def ensure(h: dict, hdir: str, config_text: str) -> tuple[dict, bool | str]:
            daemon = Daemon("sshd", hdir, self.ns(h["name"]), values={"address": h["mgmt_address"], "port": port})
            try:
                return h, daemon.ensure(hashlib.sha256(config_text.encode()).hexdigest(), timeout=5.0)["changed"]
            except AovpnError as exc:
                return h, (f"sshd of lab host {h['name']}: {exc}; see `ip netns exec {self.ns(h['name'])} "
                           f"/usr/sbin/sshd -t -f {hdir}/sshd_config`")
        with ThreadPoolExecutor(max_workers=max(1, len(sshds))) as pool:
            outcomes = list(pool.map(lambda args: ensure(*args), sshds))
        for h, outcome in outcomes:
            if outcome is True:
                self.changed = True
                self.actions.append(f"sshd on {h['name']}")
        errors = [outcome for _, outcome in outcomes if isinstance(outcome, str)]
        if errors:
            self.fail("; ".join(errors))

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


class Batch:
    """The commands of one `ip -batch` run, in one namespace (the root one when None), in
    order. A command that makes something counts as a change and is named in the actions."""

    def __init__(self, topo: Topology, ns: str | None = None):
        self.topo, self.ns, self.lines = topo, ns, []

    def change(self, what: str, *argv: str) -> None:
        self.topo.changed = True
        self.topo.actions.append(what)
        self.lines.append(" ".join(argv))

    def quiet(self, *argv: str) -> None:
        self.lines.append(" ".join(argv))

    def run(self) -> None:
        if self.topo.check or not self.lines:
            return
        argv = ["ip", *(["-n", self.ns] if self.ns else []), "-batch", "-"]
        proc = subprocess.run(argv, input="\n".join(self.lines) + "\n", capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            # Judged by the exit status; ip names the failing command's error and line on stderr.
            said = " ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())
            self.topo.m.fail_json(msg=f"`{' '.join(argv)}` exited {proc.returncode}: {said or 'no output'}",
                                  batch=self.lines, actions=self.topo.actions)


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


SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    prefix=dict(type="str", required=True),
    state_dir=dict(type="path", required=True),
    management=dict(type="dict", required=False, default={}),
    hosts=dict(type="list", elements="dict", default=[]),
    links=dict(type="list", elements="dict", default=[]),
)


class ActionModule(LabAction):
    SPEC = SPEC
    SUPPORTS_CHECK_MODE = True  # Topology reads what exists and only lists what it would do

    def act(self, params):
        if os.geteuid() != 0:
            raise AnsibleActionFail("lab_topology needs root (network namespaces, veth, bridge)")
        topo = Topology(params, check=self._task.check_mode)
        out = topo.present() if params["state"] == "present" else topo.absent()
        return {"changed": topo.changed, "actions": topo.actions, **out}
