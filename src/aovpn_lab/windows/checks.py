"""Rendered RRAS/NPS changes judged against profiles/rras.yml: one Check per value, each
naming the requirement a wrong value fails.

What is expected is the catalogue's value, or the one the inventory states for the host
(`rras` / `nps` laid over the catalogue, as the roles lay them); a weak IKEv2 algorithm
fails AOVPN-IKE-CRYPTO-001 even when the inventory states it.

    >>> Check("AOVPN-IKE-FRAG-001", "registry EnableServerFragmentation", 1, 0).ok
    False
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

import yaml

from .. import paths
from ..errors import AovpnError
from ..inventory import Inventory
from .render import REDACTED, Change

PROFILE = paths.PROFILES / "rras.yml"
MISSING = "<not rendered>"


@dataclass(frozen=True)
class Check:
    requirement: str
    what: str
    expected: Any
    actual: Any

    @property
    def ok(self) -> bool:
        return _same(self.expected, self.actual)


@lru_cache(maxsize=1)
def profile() -> dict[str, Any]:
    try:
        return yaml.safe_load(PROFILE.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AovpnError(f"{PROFILE}: cannot be read ({exc})", hint="restore profiles/rras.yml") from None


def judge(changes: list[Change], inv: Inventory, host: str) -> list[Check]:
    """Every catalogue value for `host`'s role (the changes' role), rendered or not."""
    roles = {c.role for c in changes}
    if roles == {"nps"}:
        return _nps(changes, inv, host)
    return _rras(changes, inv, host)


def failed(checks: Iterable[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]


# -- RRAS ------------------------------------------------------------------------

def _rras(changes: list[Change], inv: Inventory, host: str) -> list[Check]:
    h = inv.host(host)
    s = _merge(profile()["rras"], h.var("rras") or {})
    out: list[Check] = []
    feat = _one(changes, module="win_feature")
    out.append(Check(s["features"]["requirement"], "features", sorted(s["features"]["names"]),
                     sorted(feat.args.get("name") or []) if feat else MISSING))

    policy = s["ikev2_policy"]
    wanted = policy["sets"][policy["default_set"]]
    conf = _params(changes, "vpn-server-configuration.ps1")
    for key, value in wanted.items():
        out.append(Check(policy["requirement"], f"Set-VpnServerConfiguration -{key}", value, conf.get(key, MISSING)))
    for key, weak in policy["weak"].items():
        if conf.get(key) in weak:
            out.append(Check(policy["requirement"], f"Set-VpnServerConfiguration -{key} (weak: {', '.join(weak)})",
                             f"not {conf[key]}", conf[key]))
    out.append(Check(s["idle_timeout"]["requirement"], "Set-VpnServerConfiguration -IdleDisconnectSeconds",
                     s["idle_timeout"]["IdleDisconnectSeconds"], conf.get("IdleDisconnectSeconds", MISSING)))
    proto = s["protocols"]
    out.append(Check(proto["requirement"], "L2TP ports (Set-VpnServerConfiguration -L2tpPorts)", proto["L2tpPorts"],
                     conf.get("L2tpPorts", MISSING)))
    out.append(Check(proto["requirement"], "PPTP ports (WAN Miniport (PPTP) WanEndpoints)", proto["PptpWanEndpoints"],
                     _params(changes, "pptp-ports.ps1").get("WanEndpoints", MISSING)))

    auth = s["authentication"]
    got = _params(changes, "vpn-auth-protocol.ps1")
    for key in ("UserAuthProtocolAccepted", "TunnelAuthProtocolsAdvertised", "CertificateEKUsToAccept"):
        out.append(Check(auth["requirement"], f"Set-VpnAuthProtocol -{key}", auth[key], got.get(key, MISSING)))
    out.append(Check(auth["requirement"], "Set-VpnAuthProtocol -RootCertificateNameToAccept",
                     s.get("root_certificate"), got.get("RootCertificateName", MISSING)))

    radius = s["radius"]
    rendered = {(c.parameters.get("ServerName"), c.parameters.get("Purpose")): c for c in changes
                if c.script_name == "radius.ps1"}
    for nps_host in inv.group("nps_servers"):
        server = nps_host.var("nps_radius_address") or nps_host.address
        for purpose, port in (("Authentication", radius["authentication_port"]),
                              ("Accounting", radius["accounting_port"])):
            c = rendered.get((server, purpose))
            got = dict(c.parameters) if c else {}
            out.append(Check(radius["requirement"], f"RADIUS {purpose} server {server} port", port,
                             got.get("Port", MISSING)))
            out.append(Check(radius["requirement"], f"RADIUS {purpose} server {server} shared secret (vaulted)",
                             REDACTED, _secret(c)))
        out.append(Check(radius["requirement"], "Set-VpnAuthType -Type", radius["type"],
                         dict(rendered[(server, "Authentication")].parameters).get("AuthType")
                         if (server, "Authentication") in rendered else MISSING))

    pool = h.var("rras_address_pool") or {}
    got = _params(changes, "address-pool.ps1")
    out.append(Check(s["address_pool"]["requirement"], "address pool method", s["address_pool"]["method"],
                     got.get("Method", MISSING)))
    out.append(Check(s["address_pool"]["requirement"], "address pool range", [pool.get("start"), pool.get("end")],
                     [got.get("Start", MISSING), got.get("End", MISSING)]))

    for entry in s["registry"]:
        if entry.get("only_when") and not s.get(entry["only_when"]):
            continue
        value = entry["value"]
        if value == "from-inventory":
            digest = str(s.get(entry["inventory_key"], "")).lower()
            value = "hex:" + ",".join(digest[i:i + 2] for i in range(0, len(digest), 2))
        c = _one(changes, module="win_regedit", path=entry["key"], name=entry["name"])
        out.append(Check(entry["requirement"], f"registry {entry['key']}\\{entry['name']}",
                         (entry["type"], value), (c.args.get("type"), c.args.get("data")) if c else MISSING))

    sch = s["schannel"]
    for names, enabled in ((sch["disabled"], 0), (sch["enabled"], 1)):
        for p in names:
            for value_name, data in (("Enabled", enabled), ("DisabledByDefault", 1 - enabled)):
                path = f"{sch['key']}\\{p}\\Server"
                c = _one(changes, module="win_regedit", path=path, name=value_name)
                out.append(Check(sch["requirement"], f"SCHANNEL {p} Server {value_name}", data,
                                 c.args.get("data") if c else MISSING))

    fw = s["firewall"]
    for rule in fw["rules"]:
        c = _one(changes, module="win_firewall_rule", name=rule["name"])
        want = (str(rule["protocol"]).lower(), rule.get("port"), "in", "allow")
        out.append(Check(fw["requirement"], f"firewall rule {rule['name']}", want,
                         (str(c.args.get("protocol")).lower(), c.args.get("localport"), c.args.get("direction"),
                          c.args.get("action")) if c else MISSING))
    return out


# -- NPS -------------------------------------------------------------------------

def _nps(changes: list[Change], inv: Inventory, host: str) -> list[Check]:
    h = inv.host(host)
    s = _merge(profile()["nps"], h.var("nps") or {})
    out: list[Check] = []
    feat = _one(changes, module="win_feature")
    out.append(Check(s["features"]["requirement"], "features", sorted(s["features"]["names"]),
                     sorted(feat.args.get("name") or []) if feat else MISSING))
    requirement = s["features"]["requirement"]
    clients = {c.parameters.get("Name"): c for c in changes if c.script_name == "radius-client.ps1"}
    for gw in inv.group("rras_gateways"):
        c = clients.get(gw.name)
        out.append(Check(requirement, f"RADIUS client {gw.name} address", gw.var("rras_radius_source") or gw.address,
                         c.parameters.get("Address") if c else MISSING))
        out.append(Check(requirement, f"RADIUS client {gw.name} shared secret (vaulted)", REDACTED, _secret(c)))
    extra = sorted(set(clients) - {gw.name for gw in inv.group("rras_gateways")})
    if extra:
        out.append(Check(requirement, "RADIUS clients not in rras_gateways", [], extra))
    groups = {"user": h.var("nps_user_group"), "machine": h.var("nps_device_group")}
    policies = {c.parameters.get("Name"): c for c in changes if c.script_name == "network-policy.ps1"}
    for p in s["policies"]:
        c = policies.get(p["name"])
        got = dict(c.parameters) if c else {}
        out.append(Check(p["requirement"], f"network policy {p['name']} EAP types ({', '.join(p['auth'])})",
                         sorted(p["eap_types"]), sorted(got["EapTypes"]) if "EapTypes" in got else MISSING))
        out.append(Check(p["requirement"], f"network policy {p['name']} {p['group_kind']} group",
                         groups[p["group_kind"]], got.get("Group", MISSING)))
    return out


# -- helpers ---------------------------------------------------------------------

def _merge(base: dict, over: dict) -> dict:
    """`over` laid on `base` key by key, as the roles' combine(recursive=True)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _one(changes: list[Change], module: str, **args: Any) -> Change | None:
    return next((c for c in changes if c.module.endswith(module)
                 and all(c.args.get(k) == v for k, v in args.items())), None)


def _params(changes: list[Change], script: str) -> dict[str, Any]:
    c = next((c for c in changes if c.script_name == script), None)
    return dict(c.parameters) if c else {}


def _secret(c: Change | None) -> Any:
    """What a rendered task carries as its shared secret: the placeholder, never the secret."""
    if c is None:
        return MISSING
    return next((p.get("value") for p in c.args.get("sensitive_parameters") or [] if p.get("name") == "SharedSecret"),
                MISSING)


def _same(expected: Any, actual: Any) -> bool:
    """Equal as the host would read them: 1 and '1' are the same DWORD."""
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(expected) == len(actual) and all(_same(e, a) for e, a in zip(expected, actual))
    if expected is None or actual is None:
        return expected is actual
    return str(expected) == str(actual)
