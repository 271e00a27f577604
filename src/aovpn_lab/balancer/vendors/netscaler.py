"""Citrix NetScaler ADC: CLI lines and the same configuration as NITRO calls.

No NetScaler collection ships here, so both are rendered from one plan (the NITRO
resources and their attributes) and both can be read back, each on its own, into the
facts the checks judge:

- a persistency group (`add lb group`, `bind lb group`, `set lb group -persistenceType
  SOURCEIP -timeout MIN`) holding the UDP 500 and 4500 virtual servers, so one source-IP
  session covers both ports;
- USIP (`enable ns mode USIP`, `-usip YES` on each service): the gateways see client
  addresses, not the SNIP;
- services whose client/server idle timeouts outlast RRAS's idle time-out;
- a UDP-ECV monitor without a receive string on the IKE services (not IKE-aware) and an
  HTTP monitor over TLS sending HEAD /sra_{...}/ and expecting 401 on the SSTP services.

NetScaler persistence timeouts are in minutes (at most 1440); the seconds of the inventory
are rounded up, so the persistence never ends earlier than asked.

    >>> _minutes(28800), _minutes(61)
    (480, 2)
"""
from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import jinja2

from .artefact import Artefact
from .facts import Facts, Monitor, Persistence, Service
from ..spec import BalancerSpec

CLI = "netscaler.conf"
NITRO = "nitro.json"
FILES = (CLI, NITRO)
TEMPLATES = Path(__file__).with_name("templates")
NITRO_BASE = "/nitro/v1/config/"


def _minutes(seconds: int) -> int:
    return min(1440, max(1, math.ceil(seconds / 60)))


def plan(spec: BalancerSpec) -> dict[str, Any]:
    """The NITRO resources (attribute names as NITRO spells them) of the configuration."""
    n = spec.name
    hm = spec.health_monitor
    # resptimeout must be below the interval; both whole seconds
    interval = max(2, math.ceil(hm.interval))
    timing = {"interval": interval, "resptimeout": max(1, min(math.ceil(hm.timeout), interval - 1)),
              "retries": hm.fall, "successretries": hm.rise}
    ike_mon = {"monitorname": f"{n}-ike", "type": "UDP-ECV", **timing}
    sstp_mon = {"monitorname": f"{n}-sstp", "type": "HTTP", "httprequest": f"{spec.sstp.monitor.method} {spec.sstp.monitor.path}",
                "respcode": [str(spec.sstp.monitor.expect)], "secure": "YES", **timing}
    servers = [{"name": b.name, "ipaddress": b.address} for b in spec.backends]
    services, vservers = [], []
    for port in spec.ike_ports:
        names = []
        for b in spec.backends:
            names.append(f"{n}-{b.name}-udp{port}")
            services.append({"name": names[-1], "servername": b.name, "servicetype": "UDP", "port": port, "usip": "YES",
                             "clttimeout": spec.udp_idle_timeout, "svrtimeout": spec.udp_idle_timeout,
                             "monitor": ike_mon["monitorname"]})
        vservers.append({"name": f"{n}-ike-{port}", "servicetype": "UDP", "ipv46": spec.vip, "port": port,
                         "lbmethod": "LEASTCONNECTION", "services": names})
    sstp_names = []
    for b in spec.backends:
        sstp_names.append(f"{n}-{b.name}-tcp{spec.sstp.port}")
        services.append({"name": sstp_names[-1], "servername": b.name, "servicetype": "TCP", "port": spec.sstp.port,
                         "usip": "YES", "monitor": sstp_mon["monitorname"]})
    sstp_vs = {"name": f"{n}-sstp", "servicetype": "TCP", "ipv46": spec.vip, "port": spec.sstp.port,
               "lbmethod": "LEASTCONNECTION", "persistencetype": "SOURCEIP",
               "timeout": _minutes(spec.persistence_timeout), "services": sstp_names}
    if spec.sstp.persistence == "tls-session":
        # TLS session persistence needs the ADC to see the TLS handshake: SSL_BRIDGE passes it through
        sstp_vs.update(servicetype="SSL_BRIDGE", persistencetype="SSLSESSION", persistencebackup="SOURCEIP")
        for s in services:
            if s["name"] in sstp_names:
                s["servicetype"] = "SSL_BRIDGE"
    vservers.append(sstp_vs)
    group = {"name": f"{n}-ike", "vservers": [v["name"] for v in vservers[:-1]], "persistencetype": "SOURCEIP",
             "timeout": _minutes(spec.persistence_timeout)}
    return {"vip": spec.vip, "ike_ports": list(spec.ike_ports), "sstp": {"port": spec.sstp.port}, "servers": servers,
            "monitors": [ike_mon, sstp_mon], "services": services, "vservers": vservers, "group": group}


def render(spec: BalancerSpec, host_vars: dict[str, Any] | None = None) -> Artefact:
    p = plan(spec)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["cli"] = _quote
    cli = env.get_template("netscaler.conf.j2").render(**p)
    return Artefact("netscaler", {CLI: cli, NITRO: json.dumps(nitro_calls(p), indent=2) + "\n"})


def _quote(text: str) -> str:
    """A CLI argument in double quotes (the ADC CLI's quoting; shlex reads it back)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def nitro_calls(p: dict[str, Any]) -> list[dict[str, Any]]:
    """[{method, path, payload}]: add is POST on the resource, bind and set are PUT."""
    calls = [_call("POST", "nsmode?action=enable", "nsmode", {"mode": ["USIP"]})]
    calls += [_call("POST", "server", "server", s) for s in p["servers"]]
    calls += [_call("POST", "lbmonitor", "lbmonitor", m) for m in p["monitors"]]
    for s in p["services"]:
        calls.append(_call("POST", "service", "service", {k: v for k, v in s.items() if k != "monitor"}))
        calls.append(_call("PUT", "service_lbmonitor_binding", "service_lbmonitor_binding",
                           {"name": s["name"], "monitor_name": s["monitor"]}))
    for v in p["vservers"]:
        calls.append(_call("POST", "lbvserver", "lbvserver", {k: val for k, val in v.items() if k != "services"}))
        calls += [_call("PUT", "lbvserver_service_binding", "lbvserver_service_binding",
                        {"name": v["name"], "servicename": s}) for s in v["services"]]
    g = p["group"]
    calls.append(_call("POST", "lbgroup", "lbgroup", {"name": g["name"]}))
    calls += [_call("PUT", "lbgroup_lbvserver_binding", "lbgroup_lbvserver_binding", {"name": g["name"], "vservername": v})
              for v in g["vservers"]]
    calls.append(_call("PUT", "lbgroup", "lbgroup", {"name": g["name"], "persistencetype": g["persistencetype"],
                                                     "timeout": g["timeout"]}))
    return calls


def _call(method: str, path: str, resource: str, attrs: dict) -> dict:
    return {"method": method, "path": NITRO_BASE + path, "payload": {resource: attrs}}


# ------------------------------------------------------------------------------ reading back

class _Config:
    """The objects a configuration creates, whichever form it was read from."""

    def __init__(self):
        self.modes: set[str] = set()
        self.servers: dict[str, str] = {}
        self.services: dict[str, dict] = {}
        self.monitors: dict[str, dict] = {}
        self.vservers: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}

    def service(self, name: str) -> dict:
        return self.services.setdefault(name, {"monitors": []})

    def vserver(self, name: str) -> dict:
        return self.vservers.setdefault(name, {"services": []})

    def group(self, name: str) -> dict:
        return self.groups.setdefault(name, {"vservers": []})


def read(artefact: Artefact) -> Facts:
    """The facts of the CLI text (see read_nitro for the JSON calls)."""
    return _facts(_from_cli(artefact.files[CLI]))


def read_nitro(artefact: Artefact) -> Facts:
    return _facts(_from_nitro(json.loads(artefact.files[NITRO])))


def _from_cli(text: str) -> _Config:
    c = _Config()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        for n in (3, 2):
            if " ".join(words[:n]) in _CLI:
                cmd, rest = " ".join(words[:n]), words[n:]
                break
        else:
            continue  # a command the checks do not judge
        pos, opts = [], {}
        i = 0
        while i < len(rest):
            if rest[i].startswith("-"):
                key, values = rest[i][1:].lower(), []
                i += 1
                while i < len(rest) and not rest[i].startswith("-"):
                    values.append(rest[i])
                    i += 1
                opts[key] = values if key == "respcode" else " ".join(values)
            else:
                pos.append(rest[i])
                i += 1
        _CLI[cmd](c, pos, opts)
    return c


def _cli_service(c, pos, o):
    c.service(pos[0]).update(servername=pos[1], servicetype=pos[2], port=int(pos[3]), **o)


def _cli_vserver(c, pos, o):
    c.vserver(pos[0]).update(servicetype=pos[1], ipv46=pos[2], port=int(pos[3]), **o)


_CLI = {
    "enable ns mode": lambda c, pos, o: c.modes.update(p.upper() for p in pos),
    "add server": lambda c, pos, o: c.servers.__setitem__(pos[0], pos[1]),
    "add service": _cli_service,
    "set service": lambda c, pos, o: c.service(pos[0]).update(o),
    "bind service": lambda c, pos, o: c.service(pos[0])["monitors"].append(o.get("monitorname")),
    "add lb monitor": lambda c, pos, o: c.monitors.__setitem__(pos[0], {"type": pos[1], **o}),
    "add lb vserver": _cli_vserver,
    "set lb vserver": lambda c, pos, o: c.vserver(pos[0]).update(o),
    "bind lb vserver": lambda c, pos, o: c.vserver(pos[0])["services"].append(pos[1]),
    "add lb group": lambda c, pos, o: c.group(pos[0]).update(o),
    "bind lb group": lambda c, pos, o: c.group(pos[0])["vservers"].append(pos[1]),
    "set lb group": lambda c, pos, o: c.group(pos[0]).update(o),
}


def _from_nitro(calls: list[dict]) -> _Config:
    c = _Config()
    for call in calls:
        path = call["path"][len(NITRO_BASE):] if call["path"].startswith(NITRO_BASE) else call["path"]
        resource = path.split("?")[0]
        attrs = dict(call["payload"].get(resource, {}))
        if resource == "nsmode" and "action=enable" in path:
            c.modes.update(m.upper() for m in attrs.get("mode", []))
        elif resource == "server":
            c.servers[attrs["name"]] = attrs["ipaddress"]
        elif resource == "service":
            c.service(attrs.pop("name")).update(attrs)
        elif resource == "service_lbmonitor_binding":
            c.service(attrs["name"])["monitors"].append(attrs["monitor_name"])
        elif resource == "lbmonitor":
            c.monitors[attrs.pop("monitorname")] = attrs
        elif resource == "lbvserver":
            c.vserver(attrs.pop("name")).update(attrs)
        elif resource == "lbvserver_service_binding":
            c.vserver(attrs["name"])["services"].append(attrs["servicename"])
        elif resource == "lbgroup":
            c.group(attrs.pop("name")).update(attrs)
        elif resource == "lbgroup_lbvserver_binding":
            c.group(attrs["name"])["vservers"].append(attrs["vservername"])
    return c


def _facts(c: _Config) -> Facts:
    vips = {v.get("ipv46") for v in c.vservers.values()}
    facts = Facts("netscaler", next(iter(vips)) if len(vips) == 1 else None)
    port_of = {name: int(v["port"]) for name, v in c.vservers.items()}
    for name, v in c.vservers.items():
        protocol = "udp" if v.get("servicetype", "").upper() == "UDP" else "tcp"
        port = int(v["port"])
        services = [c.services.get(s, {}) for s in v["services"]]
        group = next(((g_name, g) for g_name, g in c.groups.items() if name in g["vservers"]), None)
        persistence = None
        if group is not None:
            # a vserver in a group persists by the group's settings, shared by every member vserver
            g_name, g = group
            persistence = _persistence(g.get("persistencetype"), g.get("timeout"),
                                       {port_of[m] for m in g["vservers"] if m in port_of} | {port}, f"lb group {g_name}")
        elif v.get("persistencetype"):
            persistence = _persistence(v["persistencetype"], v.get("timeout"), {port}, f"lb vserver {name}")
        elif str(v.get("lbmethod", "")).upper() in ("SOURCEIPHASH", "SRCIPSRCPORTHASH", "TOKEN", "CALLIDHASH"):
            # a hash per vserver picks from its own service list: nothing ties 500 to 4500
            persistence = Persistence("hash", None, frozenset({port}), f"lb vserver {name} -lbMethod {v['lbmethod']}")
        usip = [str(s.get("usip", "YES" if "USIP" in c.modes else "NO")).upper() for s in services]
        nat = "none" if usip and all(u == "YES" for u in usip) else "USNIP/SNIP (a service without -usip YES)"
        idle = [int(s["clttimeout"]) for s in services if s.get("clttimeout") is not None]
        monitors = []
        for s in services:
            for m_name in s.get("monitors", []):
                if m_name in c.monitors:
                    monitors.append(_monitor(m_name, c.monitors[m_name]))
        facts.services[(protocol, port)] = Service(
            protocol=protocol, port=port, where=f"lb vserver {name}",
            members=tuple(c.servers.get(s.get("servername"), s.get("servername")) for s in services),
            source_nat=nat, persistence=persistence, monitors=tuple(monitors),
            idle_timeout=min(idle) if len(idle) == len(services) and idle else None)
    return facts


def _persistence(kind: str | None, minutes: Any, shared: set[int], where: str) -> Persistence | None:
    kinds = {"SOURCEIP": "source", "SSLSESSION": "tls-session"}
    if not kind or str(kind).upper() == "NONE":
        return None
    return Persistence(kinds.get(str(kind).upper(), str(kind).lower()),
                       None if minutes is None else int(minutes) * 60, frozenset(shared), where)


def _monitor(name: str, m: dict) -> Monitor:
    kind = str(m.get("type", "")).upper()
    where = f"lb monitor {name}"
    if kind in ("HTTP", "HTTP-ECV"):
        request = str(m.get("httprequest") or m.get("send") or "").split()
        codes = m.get("respcode") or ([m["recv"]] if m.get("recv") else [])
        return Monitor("http", where, method=request[0] if request else None, path=request[1] if len(request) > 1 else None,
                       expect=" ".join(str(x) for x in codes) or None, secure=str(m.get("secure", "NO")).upper() == "YES")
    if kind == "PING":
        return Monitor("icmp", where)
    return Monitor("udp-port", where)
