"""Kemp LoadMaster: RESTful API calls (`/access/addvs`, `/access/addrs`, `/access/modvs`)
and the same as readable text.

Parameter names as the LoadMaster API and its PowerShell module spell them (vs, port,
prot, Persist, PersistTimeout, Transparent, Idletime, CheckType, CheckUrl, CheckUseGet,
CheckCodes, CheckHost, CheckUse1.1, FollowVSID; addrs: rs, rsport). What is a reading of
ours, not the documentation's, is said so where it is used:

- FollowVSID takes the Index the LoadMaster gives a virtual service when it is added, so
  the calls that set it refer to the addvs call whose Index they need;
- port following is set on both IKE services (each follows the other): the documentation
  describes it on the service a client moves to (4500); both directions do no harm;
- CheckUseGet=0 is taken to mean HEAD.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from .artefact import Artefact
from .facts import Facts, Monitor, Persistence, Service
from ..spec import BalancerSpec

CALLS = "kemp-calls.json"
TEXT = "kemp.txt"
FILES = (CALLS, TEXT)
TEMPLATES = Path(__file__).with_name("templates")
# Kemp's PersistTimeout range (seconds); Idletime up to 86400
PERSIST_MAX = 604800


def calls(spec: BalancerSpec) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    added: dict[int, int] = {}
    for port in spec.ike_ports:
        out.append(_call("addvs", f"UDP {port} virtual service: source-IP persistence, transparent, idle timeout", {
            "vs": spec.vip, "port": port, "prot": "udp", "NickName": f"{spec.name}-ike-{port}",
            "Schedule": "lc", "Persist": "src", "PersistTimeout": min(spec.persistence_timeout, PERSIST_MAX),
            "Transparent": 1, "Idletime": min(spec.udp_idle_timeout, 86400), "CheckType": "icmp"}))
        added[port] = len(out)
        for b in spec.backends:
            out.append(_call("addrs", f"Real Server {b.name} for UDP {port}",
                             {"vs": spec.vip, "port": port, "prot": "udp", "rs": b.address, "rsport": port}))
    if 500 in added and 4500 in added:
        for port, other in ((4500, 500), (500, 4500)):
            out.append(_call("modvs", f"port following: UDP {port} follows UDP {other}",
                             {"vs": spec.vip, "port": port, "prot": "udp",
                              "FollowVSID": {"index_of_call": added[other], "port": other}}))
    mon = spec.sstp.monitor
    out.append(_call("addvs", f"TCP {spec.sstp.port} (SSTP) virtual service, TLS passed through: HTTPS check HEAD "
                              f"{mon.path} expecting {mon.expect}", {
        "vs": spec.vip, "port": spec.sstp.port, "prot": "tcp", "NickName": f"{spec.name}-sstp", "Schedule": "lc",
        "Persist": "src", "PersistTimeout": min(spec.persistence_timeout, PERSIST_MAX), "Transparent": 1,
        "CheckType": "https", "CheckUrl": mon.path, "CheckUseGet": 0 if mon.method.upper() == "HEAD" else 1,
        "CheckCodes": str(mon.expect), "CheckHost": mon.host or spec.vip, "CheckUse1.1": 1}))
    for b in spec.backends:
        out.append(_call("addrs", f"Real Server {b.name} for SSTP",
                         {"vs": spec.vip, "port": spec.sstp.port, "prot": "tcp", "rs": b.address, "rsport": spec.sstp.port}))
    return out


def _call(command: str, why: str, params: dict) -> dict:
    return {"method": "GET", "path": f"/access/{command}", "params": params, "why": why}


def render(spec: BalancerSpec, host_vars: dict[str, Any] | None = None) -> Artefact:
    c = calls(spec)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = env.get_template("kemp.txt.j2").render(calls=c, vip=spec.vip, ike_ports=list(spec.ike_ports),
                                                  sstp_port=spec.sstp.port)
    return Artefact("kemp", {CALLS: json.dumps(c, indent=2) + "\n", TEXT: text})


def read(artefact: Artefact) -> Facts:
    """The facts of the JSON calls, replayed in order as the LoadMaster would apply them."""
    calls = json.loads(artefact.files[CALLS])
    services: dict[tuple, dict] = {}
    index: dict[int, tuple] = {}   # call number (1-based) of an addvs -> its service key
    for n, call in enumerate(calls, 1):
        p = dict(call["params"])
        key = (str(p.pop("vs")), str(p.pop("prot")).lower(), int(p.pop("port")))
        command = call["path"].rsplit("/", 1)[-1]
        if command == "addvs":
            services[key] = {"rs": [], **p}
            index[n] = key
        elif command == "modvs" and key in services:
            services[key].update(p)
        elif command == "addrs" and key in services:
            services[key]["rs"].append(p["rs"])
    vips = {k[0] for k in services}
    facts = Facts("kemp", next(iter(vips)) if len(vips) == 1 else None)
    for key, s in services.items():
        _, protocol, port = key
        follows = {}
        for k, v in services.items():
            ref = v.get("FollowVSID")
            if isinstance(ref, dict) and index.get(ref.get("index_of_call")):
                follows[k] = index[ref["index_of_call"]]
        # port following joins two services' source-IP records, in whichever direction it is set
        shared = {port}
        for a, b in follows.items():
            if key in (a, b) and services[a].get("Persist") == services[b].get("Persist") == "src":
                shared |= {a[2], b[2]}
        persistence = None
        if s.get("Persist"):
            kind = {"src": "source", "ssl": "tls-session"}.get(s["Persist"], s["Persist"])
            persistence = Persistence(kind, int(s["PersistTimeout"]) if s.get("PersistTimeout") else None,
                                      frozenset(shared), f"virtual service {key[0]}:{port}/{protocol} Persist={s['Persist']}")
        facts.services[(protocol, port)] = Service(
            protocol=protocol, port=port, where=f"virtual service {key[0]}:{port}/{protocol}", members=tuple(s["rs"]),
            source_nat="none" if str(s.get("Transparent")) in ("1", "True", "true", "Y") else "Transparent off (SNAT)",
            persistence=persistence, monitors=_monitors(s, key),
            idle_timeout=int(s["Idletime"]) if s.get("Idletime") else None)
    return facts


def _monitors(s: dict, key: tuple) -> tuple[Monitor, ...]:
    kind = str(s.get("CheckType", "")).lower()
    where = f"health check of {key[0]}:{key[2]}/{key[1]}"
    if kind in ("http", "https"):
        method = {0: "HEAD", 1: "GET", 2: "POST"}.get(int(s.get("CheckUseGet", 0)))
        return (Monitor("http", where, method=method, path=s.get("CheckUrl"), expect=s.get("CheckCodes"),
                        secure=kind == "https", host=s.get("CheckHost")),)
    if kind == "icmp":
        return (Monitor("icmp", where),)
    return ()
