"""The reason model: what a matrix cell must show, what this gateway will show, and why.

Both come from data only: the client profile's proposals and fragmentation, the
gateway's crypto policy, fragmentation setting and certificate sizes, and the network
condition.

- `predict_ikev2(profile, condition, facts)`: what THIS gateway will do, with the reason
  and the fix - the explanation a failing cell shows.
- `require_ikev2(profile, condition, facts)`: what a gateway that follows every
  recommendation (hardened policy, RFC 7383 on) would do with the same certificates on
  the same network - the expectation a cell is judged by.

    >>> from aovpn_lab.conditions.model import Condition
    >>> from aovpn_lab.ike import profiles
    >>> weak = GatewayFacts(policy="weak", fragmentation=True)
    >>> require_ikev2(profiles.get("windows10-default"), Condition.parse("open"), weak).outcome
    'no-proposal-chosen'
    >>> predict_ikev2(profiles.get("windows10-default"), Condition.parse("open"), weak).outcome
    'connected'
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import yaml

from . import paths
from .conditions.model import Condition
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
    firewall: str | None = None            # server-side rules: correct, missing-4500, no-esp
    native_esp: bool | None = None         # False: the IPsec data path never sends IP protocol 50


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


# strongSwan's charon.fragment_size default: the IP datagram size of an RFC 7383 fragment.
IKE_FRAGMENT_SIZE = 1280

RECOMMENDED = {"policy": "hardened", "fragmentation": True, "firewall": "correct"}


def require_ikev2(profile: ClientProfile, condition: Condition, gw: GatewayFacts, mtu: int = 1500) -> Expectation:
    """The outcome a gateway following every recommendation would give (certificate sizes kept)."""
    return predict_ikev2(profile, condition, replace(gw, **RECOMMENDED), mtu)


def predict_ikev2(profile: ClientProfile, condition: Condition, gw: GatewayFacts, mtu: int = 1500) -> Expectation:
    result = _predict(profile, condition, gw, mtu)
    policy = gateway_policies().get(gw.policy or "")
    hardened = gateway_policies().get(RECOMMENDED["policy"])
    if result.outcome == "connected" and policy is not None and hardened is not None \
            and not proposals_overlap(profile.ike, hardened["ike"]):
        # It works - with cryptography a hardened gateway refuses.
        return Expectation(
            "connected", "AOVPN-IKE-CRYPTO-001",
            f"the {gw.policy} gateway accepts profile {profile.name}'s {', '.join(profile.ike)} (3DES, SHA-1 or "
            f"DH group 1/2); {result.reason}",
            fix="restrict the gateway's IKE policy (RRAS: Set-VpnServerConfiguration -CustomPolicy with AES128, "
                "SHA256, Group14, PFS2048) and deploy the same policy to clients")
    return result


NOT_APPLICABLE = "not-applicable"


def _predict(profile: ClientProfile, condition: Condition, gw: GatewayFacts, mtu: int) -> Expectation:
    # A condition that cannot change anything on this target makes the cell not applicable:
    # it could not fail, so it must not pass.
    if condition.has("block-esp") and not condition.also and gw.native_esp is False:
        return Expectation(NOT_APPLICABLE, "AOVPN-IKE-PORT-001",
                           "this lab's IPsec data path (strongSwan kernel-libipsec) always encapsulates ESP in UDP "
                           "4500, so dropping native ESP (IP protocol 50) cannot change the outcome; the path scan "
                           "checks native-ESP filtering with crafted packets instead")
    # Failures are predicted in the order a client meets them: IKE_SA_INIT must arrive
    # before proposals can be refused, and be accepted before IKE_AUTH can be lost.
    if condition.has("block-udp-500"):
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
    if gw.firewall == "missing-4500" and not condition.has("block-udp-4500"):
        return Expectation("udp-4500-blocked", "AOVPN-IKE-CONN-001",
                           "the gateway's own firewall admits UDP 500 but not UDP 4500: IKE_SA_INIT is answered, "
                           "IKE_AUTH (sent to 4500 once NAT-T applies) never arrives, on every network",
                           fix="allow UDP 4500 (and ESP) inbound on the gateway's firewall / security group")
    if condition.has("block-udp-4500"):
        return Expectation("udp-4500-blocked", "AOVPN-IKE-PORT-001",
                           "IKE_SA_INIT on UDP 500 works, then the client floats to UDP 4500 (NAT-T) and the "
                           "network drops it, so IKE_AUTH is lost",
                           fix="allow UDP 4500 outbound")
    path_mtu = condition.path_mtu or mtu
    drops = condition.has("drop-ip-fragments")
    if drops or condition.has("mtu"):
        big = [(name, size) for name, size in (("client's IKE_AUTH request", gw.ike_auth_request),
                                               ("gateway's IKE_AUTH response", gw.ike_auth_response))
               if size and size + 32 > path_mtu]
        rfc7383 = profile.fragmentation and bool(gw.fragmentation)
        if big and not rfc7383 and drops:
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
        if big and rfc7383 and drops and IKE_FRAGMENT_SIZE > path_mtu:
            return Expectation(
                "ike-fragments-dropped", "AOVPN-IKE-FRAG-001",
                f"both sides use RFC 7383, but its fragments ({IKE_FRAGMENT_SIZE} B) exceed the path MTU {path_mtu}: "
                "they are refused (ICMP frag-needed), the retransmits get IP-fragmented, and the network drops "
                "fragments",
                fix=f"lower the IKE fragment size to the path MTU or below (strongSwan charon.fragment_size; "
                    f"{path_mtu} here), or let fragments through")
        if big and rfc7383:
            return Expectation("connected", "AOVPN-IKE-FRAG-001",
                               f"IKE_AUTH exceeds the path MTU {path_mtu} but both sides use RFC 7383 fragmentation")
        if big and not drops:
            return Expectation("connected", "AOVPN-IKE-FRAG-001",
                               f"IKE_AUTH exceeds the path MTU {path_mtu}; it is IP-fragmented, and this path passes "
                               "fragments")
        return Expectation("connected", "AOVPN-IKE-FRAG-001",
                           f"IKE_AUTH fits the path MTU {path_mtu} (request {gw.ike_auth_request or '?'} B, response "
                           f"{gw.ike_auth_response or '?'} B): nothing is IP-fragmented")
    if condition.has("nat"):
        return Expectation("connected", "AOVPN-IKE-PORT-001",
                           "behind NAT both sides detect it (NAT-D) and move IKE and ESP to UDP 4500")
    if condition.has("block-esp"):
        return Expectation("connected", "AOVPN-IKE-PORT-001",
                           "native ESP (IP protocol 50) is not needed: ESP is UDP-encapsulated on 4500 here")
    return Expectation("connected", "AOVPN-IKE-CONN-001",
                       f"open network, profile {profile.name} matches the gateway's policy"
                       + (f" ({gw.policy})" if gw.policy else ""))
