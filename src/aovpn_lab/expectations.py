"""The reason model: what a matrix cell should show, and why, before it runs.

An expectation is derived from data only: the client profile's proposals, the
gateway's crypto policy and fragmentation setting, the certificate sizes, and the
network condition. The cell then compares it with what happened.

    >>> from aovpn_lab.conditions.model import Condition
    >>> exp = expect_ikev2(profiles.get("windows10-default"), Condition.parse("open"), GatewayFacts(policy="hardened"))
    >>> exp.outcome, exp.requirement
    ('no-proposal-chosen', 'AOVPN-IKE-CRYPTO-001')
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import yaml

from . import paths
from .conditions.model import Condition
from .ike import profiles
from .ike.profiles import ClientProfile
from .verdict import Expectation

POLICIES_FILE = paths.PROFILES / "gateway-policies.yml"


@dataclass(frozen=True)
class GatewayFacts:
    """What is known about a gateway before testing it (None: unknown, e.g. an external gateway)."""
    policy: str | None = None
    fragmentation: bool | None = None
    ike_auth_request: int | None = None    # predicted size of the client's IKE_AUTH (bytes)
    ike_auth_response: int | None = None   # predicted size of the gateway's IKE_AUTH


@lru_cache(maxsize=1)
def gateway_policies() -> dict[str, dict]:
    return (yaml.safe_load(POLICIES_FILE.read_text()) or {}).get("policies", {})


def _transform_sets(proposal: str) -> dict[int, set]:
    from .ike.transforms import parse_proposal
    sets: dict[int, set] = {}
    for ttype, tid, keylen in parse_proposal(proposal, "strongswan").transform_ids():
        sets.setdefault(ttype, set()).add((tid, keylen))
    return sets


def proposals_overlap(client: tuple[str, ...], gateway: list[str]) -> bool:
    """True when some client proposal and some gateway proposal share a transform of every type."""
    for c in client:
        cs = _transform_sets(c)
        for g in gateway:
            gs = _transform_sets(g)
            if all(cs.get(t, set()) & gs.get(t, set()) if (cs.get(t) or gs.get(t)) else True for t in (1, 2, 3, 4)):
                return True
    return False


def expect_ikev2(profile: ClientProfile, condition: Condition, gw: GatewayFacts, mtu: int = 1500) -> Expectation:
    # Failures are predicted in the order a client meets them: IKE_SA_INIT must arrive
    # before proposals can be refused, and be accepted before IKE_AUTH can be lost.
    if condition.kind == "block-udp-500":
        return Expectation("udp-500-blocked", "AOVPN-IKE-PORT-001",
                           "the network drops UDP 500, so IKE_SA_INIT never reaches the gateway",
                           fix="allow UDP 500 outbound, or fall back to SSTP (TCP 443)")
    policy = gateway_policies().get(gw.policy or "")
    if policy is not None and not proposals_overlap(profile.ike, policy["ike"]):
        return Expectation(
            "no-proposal-chosen", "AOVPN-IKE-CRYPTO-001",
            f"profile {profile.name} offers only {', '.join(profile.ike)}; the {gw.policy} gateway accepts none "
            "of it, so IKE_SA_INIT is answered with NO_PROPOSAL_CHOSEN (Windows error 13868)",
            fix="deploy a custom IPsec policy on the client (AES128/SHA256/DH14 or better) that matches the "
                "gateway's")
    if condition.kind == "block-udp-4500":
        return Expectation("udp-4500-blocked", "AOVPN-IKE-PORT-001",
                           "IKE_SA_INIT on UDP 500 works, then the client floats to UDP 4500 (NAT-T) and the "
                           "network drops it, so IKE_AUTH is lost",
                           fix="allow UDP 4500 outbound")
    path_mtu = condition.mtu if condition.kind == "mtu" else mtu
    if condition.kind in ("drop-ip-fragments", "mtu"):
        big = [(name, size) for name, size in (("client's IKE_AUTH request", gw.ike_auth_request),
                                               ("gateway's IKE_AUTH response", gw.ike_auth_response))
               if size and size + 32 > path_mtu]
        rfc7383 = profile.fragmentation and bool(gw.fragmentation)
        if big and not rfc7383 and condition.kind == "drop-ip-fragments":
            name, size = big[0]
            missing = [side for side, on in (("client", profile.fragmentation), ("gateway", gw.fragmentation))
                       if not on]
            fixes = {"gateway": "enable IKEv2 fragmentation (RFC 7383) on the gateway (RRAS: Ikev2\\"
                                "EnableServerFragmentation=1 and restart RemoteAccess; strongSwan: fragmentation=yes)",
                     "client": "leave IKEv2 fragmentation (RFC 7383) on in the client profile "
                               "(DisableIKEv2Fragmentation false)"}
            return Expectation(
                "ip-fragments-dropped", "AOVPN-IKE-FRAG-001",
                f"{name} is {size} B > path MTU {path_mtu}, so it is IP-fragmented and the network drops "
                f"fragments; IKEv2 fragmentation (RFC 7383) is off on the {' and '.join(missing)}",
                fix="; ".join(fixes[m] for m in missing) + "; or use smaller certificates (ECDSA, shorter chain)")
        if big and rfc7383:
            return Expectation("connected", "AOVPN-IKE-FRAG-001",
                               f"IKE_AUTH exceeds the path MTU {path_mtu} but both sides use RFC 7383 fragmentation")
        return Expectation("connected", "AOVPN-IKE-FRAG-001",
                           f"IKE_AUTH fits the path MTU {path_mtu} (request {gw.ike_auth_request or '?'} B, response "
                           f"{gw.ike_auth_response or '?'} B): nothing is IP-fragmented")
    if condition.kind == "block-esp":
        return Expectation("connected", "AOVPN-IKE-PORT-001",
                           "native ESP (IP protocol 50) is not needed: ESP is UDP-encapsulated on 4500 here")
    return Expectation("connected", "AOVPN-IKE-CONN-001",
                       f"open network, profile {profile.name} matches the gateway's policy"
                       + (f" ({gw.policy})" if gw.policy else ""))
