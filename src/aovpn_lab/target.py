"""The system under test as the suite sees it: IKEv2 gateways and the client to test from.

Built from the inventory, for the embedded lab (credentials from the lab's PKI, the
client's charon and namespace) and for real deployments (paths given in host vars).

    >>> t = Target.from_inventory(inventory.load("inventories/lab"))   # doctest: +SKIP
    >>> t.gateways[0].name, t.client.netns                              # doctest: +SKIP
    ('gw1', 'aovpn-client')
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from typing import TYPE_CHECKING

from .errors import InventoryError
from .inventory import Host, Inventory
from .tool import NFT

if TYPE_CHECKING:
    from .conditions.scope import ClientScope
    from .ike.halfopen import Ledger


FIREWALL_TABLE = "aovpn_gwfw"  # the lab gateway's own firewall (playbooks/roles/strongswan)
# Its final drops, each with its counter (gateway-firewall.nft.j2 ends its input chain with them).
GATEWAY_DROPS = {"udp_500_dropped": "udp dport 500", "udp_4500_dropped": "udp dport 4500",
                 "esp_dropped": "meta l4proto esp", "other_dropped": ""}
GATEWAY_DROP_COUNTERS = tuple(GATEWAY_DROPS)


@dataclass(frozen=True)
class IkeGateway:
    name: str
    address: str
    identity: str
    ping_target: str | None
    protected_subnets: tuple[str, ...]
    certificate_profile: str | None
    fragmentation: bool | None
    crypto_policy: str | None
    ca_file: Path
    client_cert_file: Path
    client_key_file: Path
    firewall: str | None = None           # server-side rules (lab: correct, missing-4500, no-esp)
    radius_identity: str | None = None    # the RADIUS server user tunnels authenticate against
    radius_pki: Path | None = None        # lab: the PKI of the RADIUS server and the users' certificates
    netns: str | None = None              # lab gateways: their namespace (for far-end captures)
    outside_interface: str | None = None  # lab gateways: the interface clients reach
    vici: Path | None = None              # lab gateways: their charon's socket (to read their SA list)


    def firewall_counters(self, client: "IkeClient | None" = None) -> dict[str, int] | None:
        """Drops counted by the lab gateway's own firewall (table inet aovpn_gwfw); None elsewhere.
        With a scoped `client`: that client's drops alone (see count_drops_of)."""
        if self.netns is None:
            return None
        from . import tool
        out = tool.run([*NFT, "-j", "list", "counters", "table", "inet", FIREWALL_TABLE], netns=self.netns,
                       step="read the gateway firewall's counters", host=self.name).check().stdout
        found = {c["counter"]["name"]: int(c["counter"].get("packets", 0))
                 for c in json.loads(out).get("nftables", []) if "counter" in c}
        if client is None or client.scope is None:
            return {k: v for k, v in found.items() if k in GATEWAY_DROP_COUNTERS}
        return {k: found.get(client.scope.counter(k), 0) for k in GATEWAY_DROP_COUNTERS}

    def count_drops_of(self, client: "IkeClient") -> None:
        """Give a scoped client its own drop counters in the lab gateway's firewall: a chain
        reached by its addresses (its own, its NAT address) right before the firewall's
        final drops, with the same drops, so concurrent cells on other clients do not
        count into its evidence. Idempotent; the firewall's variant is left as it is."""
        if self.netns is None or client.scope is None:
            return
        from . import tool
        s = client.scope
        chain = f"inet {FIREWALL_TABLE} drops_{s.tag}"
        nft = [f"add chain {chain}", f"flush chain {chain}"]
        nft += [f"add counter inet {FIREWALL_TABLE} {s.counter(c)}" for c in GATEWAY_DROP_COUNTERS]
        nft += [" ".join(filter(None, ["add rule", chain, match, f"counter name {s.counter(c)} drop"]))
                for c, match in GATEWAY_DROPS.items()]
        elements = ", ".join(f"{a} : jump drops_{s.tag}" for a in s.addresses)
        nft.append(f"add element inet {FIREWALL_TABLE} drops_by_source {{ {elements} }}")
        tool.run([*NFT, "; ".join(nft)], netns=self.netns, step="give the client its own firewall drop counters",
                 host=self.name, timeout=10).check()

    def end_half_open(self, client: "IkeClient") -> int | None:
        """Lab gateways: destroy the half-open IKE SAs the client's earlier cells left (a scoped
        client: its own addresses only); None elsewhere, where the ledger waits them out."""
        if self.vici is None or not self.vici.is_socket():
            return None
        from .ike.session import ViciSession
        with ViciSession(self.vici, timeout=5) as s:
            return s.end_half_open(set(client.scope.addresses) if client.scope else None)

    def half_open_sas(self) -> int | None:
        """Half-open IKE SAs the gateway holds now, from its own SA list (lab gateways only)."""
        if self.vici is None or not self.vici.is_socket():
            return None
        from .ike.session import ViciSession
        with ViciSession(self.vici, timeout=5) as s:
            return s.count_sas(state="CONNECTING")

    @property
    def esp_in_udp_only(self) -> bool:
        """A lab gateway runs charon with kernel-libipsec (profiles/charon.yml): its ESP is
        always UDP-encapsulated, NAT or not, so it never sends or needs native ESP."""
        from .ike.profiles import charon_settings
        return self.netns is not None and "kernel-libipsec" in charon_settings()["plugins"].split()

    def facts(self, auth: str = "pubkey"):
        """What the reason model knows before testing: policy, fragmentation, predicted IKE_AUTH sizes.

        With a machine certificate the client's IKE_AUTH carries its chain; with EAP-TLS it
        carries none, and the gateway's first IKE_AUTH (its chain + the EAP start) is the
        big one - the loss is then in the gateway-to-client direction."""
        from .expectations import GatewayFacts
        client = None if auth == "eap-tls" else self.client_cert_file
        return GatewayFacts(policy=self.crypto_policy, fragmentation=self.fragmentation, firewall=self.firewall,
                            native_esp=False if self.esp_in_udp_only else None,
                            ike_auth_request=_predicted_size(client, self.chain_file, "initiator", auth),
                            ike_auth_response=_predicted_size(self.gateway_cert_file, self.chain_file,
                                                              "responder", auth))

    def probe_target(self, client: "IkeClient", auth: str = "pubkey"):
        """The credentials and selectors a client uses to connect to this gateway:
        pubkey = the machine certificate (device tunnel), eap-tls = the user's (user tunnel)."""
        from .ike.probe import IkeTarget
        if auth == "eap-tls":
            if not client.user or self.radius_identity is None:
                raise InventoryError(f"{self.name}: an EAP-TLS user tunnel needs ikev2_client.user and a RADIUS "
                                     "server (radius_servers group) in the inventory")
            # User certificates come from the PKI NPS trusts (the RADIUS server's), whatever
            # certificates the gateway itself uses.
            pki = self.radius_pki or self.ca_file.parent
            cert, key, local_id = pki / f"{client.user}.cert.pem", pki / f"{client.user}.key.pem", client.user
        else:
            cert, key, local_id = self.client_cert_file, self.client_key_file, client.identity
        return IkeTarget(gateway=self.address, remote_id=self.identity, ca_pem=self.ca_file.read_bytes(),
                         cert_pem=cert.read_bytes(), key_pem=key.read_bytes(), local_id=local_id,
                         remote_ts=self.protected_subnets[0] if self.protected_subnets else "0.0.0.0/0",
                         chain_pem=self.chain_file.read_bytes() if self.chain_file else b"",
                         auth=auth, aaa_id=self.radius_identity if auth == "eap-tls" else None,
                         aaa_ca_pem=(pki / "ca.pem").read_bytes() if auth == "eap-tls" else b"")

    @property
    def gateway_cert_file(self) -> Path | None:
        cand = self.ca_file.parent / f"{self.identity}.cert.pem"
        return cand if cand.is_file() else None

    @property
    def chain_file(self) -> Path | None:
        cand = self.ca_file.parent / "chain.pem"
        return cand if cand.is_file() else None


def _predicted_size(leaf: Path | None, chain: Path | None, role: str, auth: str = "pubkey") -> int | None:
    """Predicted first IKE_AUTH of one side from the certificates it sends (None: unknown)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from .certs.sizemodel import predict_ike_auth_size
    if auth == "eap-tls" and role == "initiator":
        return predict_ike_auth_size([], "eap-tls", role="initiator")  # IDi only: no CERT, no AUTH
    if leaf is None or not leaf.is_file():
        return None
    certs = x509.load_pem_x509_certificates(leaf.read_bytes())
    if chain is not None and chain.stat().st_size:
        certs += x509.load_pem_x509_certificates(chain.read_bytes())
    sizes = [len(c.public_bytes(Encoding.DER)) for c in certs]
    return predict_ike_auth_size(sizes, auth, certs[0].public_key(), role=role)


@dataclass(frozen=True)
class IkeClient:
    name: str
    identity: str
    user: str | None
    profile: str | None
    netns: str | None       # lab client: its namespace; None: this host
    vici: Path | None       # a running charon to reuse; None: start a private one
    interface: str | None = None  # lab client: where a capture sees its traffic
    # How the edge and the gateways tell this client's traffic apart (conditions scoped to
    # it, its own counters and captures); None: the run has the path to itself.
    scope: "ClientScope | None" = None

    def capture_filter(self, bpf: str) -> str:
        """`bpf` narrowed to this client's packets (its address, its NAT address), so that a
        capture at a gateway holds one cell's exchange while other clients' cells run."""
        if self.scope is None:
            return bpf
        hosts = " or ".join(f"host {a}" for a in self.scope.addresses)
        return f"({hosts}) and ({bpf})"


@dataclass(frozen=True)
class TlsGateway:
    """A TLS VPN endpoint: SSTP (user is NAME@HUB on the lab's SoftEther) or ocserv."""
    name: str
    address: str
    identity: str
    port: int
    user: str
    password: str = field(repr=False)      # never in repr, logs or reports
    ca_file: Path | None = None
    ping_target: str | None = None


@dataclass(frozen=True)
class Target:
    inventory: Inventory
    gateways: tuple[IkeGateway, ...]
    client: IkeClient

    variant: str = "default"
    sstp_gateways: tuple[TlsGateway, ...] = ()
    tlsvpn_gateways: tuple[TlsGateway, ...] = ()

    @cached_property
    def give_up(self):
        """When an unanswered IKE request is given up: the lab's rule, or against a real
        deployment the external one, whose floor follows the measured jitter (ike/giveup.py).
        Read once per target: every cell asks for it."""
        from .ike.giveup import GiveUpRule
        return GiveUpRule.from_settings(external=self.inventory.lab is None)

    def reset_path_state(self, ledger: "Ledger | None" = None) -> None:
        """Forget path MTUs learnt from ICMP on the lab's client and gateways, the gateways'
        connection tracking (their firewall admits 'established' flows) and the half-open IKE
        SAs earlier cells left on them (else a gateway's DoS protection ignores the client: the
        half-open `ledger` would wait it out), as the edge does when a condition is applied: a
        cell must not inherit the previous cell's network. With a scoped client, only what
        concerns that client: other clients' cells may be running. Call it before the edge
        applies the cell's condition: ending a half-open SA can make the gateway send the
        client a DELETE, whose flow the edge's flush must then remove."""
        from . import tool
        for g in self.gateways:
            if g.end_half_open(self.client) is not None and ledger is not None:
                ledger.forget(self.client.netns, g.address)
        scope = self.client.scope
        own = scope.addresses if scope else ()
        if self.client.netns:
            tool.run(["ip", "-n", self.client.netns, "route", "flush", "cache"], step="forget learnt path MTUs",
                     host=self.client.netns, timeout=10).check()
        for ns in sorted({g.netns for g in self.gateways} - {None}):
            for selector in (own or ((),)):
                tool.run(["ip", "-n", ns, "route", "flush", "cache", *([selector] if selector else [])],
                         step="forget learnt path MTUs", host=ns, timeout=10).check()
            if not scope:
                tool.run(["conntrack", "-F"], netns=ns, step="flush connection tracking", host=ns, timeout=10,
                         hint="apt-get install conntrack").check()
                tool.run([*NFT, "reset", "counters", "table", "inet", FIREWALL_TABLE], netns=ns,
                         step="reset the gateway firewall's counters", host=ns, timeout=10).check()
                continue
            for address in own:
                for way in ("-s", "-d"):  # its flows both ways (a gateway may have opened one towards it)
                    # conntrack -D exits 1 when no entry matched ("0 flow entries have been deleted")
                    tool.run(["conntrack", "-D", way, address], netns=ns, step="flush the client's connection "
                             "tracking", host=ns, timeout=10, ok_codes=(0, 1), hint="apt-get install conntrack").check()
            tool.run([*NFT, "; ".join(f"reset counter inet {FIREWALL_TABLE} {scope.counter(c)}"
                                       for c in GATEWAY_DROP_COUNTERS)], netns=ns,
                     step="reset the client's firewall counters", host=ns, timeout=10).check()

    @classmethod
    def from_inventory(cls, inv: Inventory, client: str | None = None, *, scoped: bool = False) -> "Target":
        """Gateways as provisioned: for the lab, with the recorded variant's overrides.
        `client`: which host of ikev2_clients to test from (default: the first); `scoped`:
        its conditions, counters and captures are its own (others' cells may run at once)."""
        from . import variants
        variant = variants.provisioned(inv.lab.state_dir) if inv.lab else variants.get("default")
        client_host = choose_client(inv, client)
        client = _client(inv, client_host, scoped)
        gateways = tuple(_gateway(inv, h, client, variant.ikev2_gateway if inv.lab and h.name in inv.lab.hosts
                                  else {}) for h in inv.group("ikev2_gateways"))
        if not gateways:
            raise InventoryError(f"{inv.path}: group 'ikev2_gateways' has no hosts",
                                 hint="describe at least one gateway (see inventories/examples/)")
        sstp = tuple(_tls_gateway(inv, h, "sstp_gateway") for h in inv.group("sstp_gateways"))
        tlsvpn = tuple(_tls_gateway(inv, h, "tlsvpn_gateway") for h in inv.group("tlsvpn_gateways"))
        return cls(inv, gateways, client, variant.name, sstp, tlsvpn)


def _section(h: Host, key: str) -> dict:
    value = h.var(key)
    if not isinstance(value, dict):
        raise InventoryError(f"{h.where(key) if key in h.origin else 'inventory'}: host '{h.name}': "
                             f"{key}: expected a mapping", hint=f"see inventories/lab/host_vars/{h.name}.yml")
    return value


def client_names(inv: Inventory) -> tuple[str, ...]:
    return tuple(h.name for h in inv.group("ikev2_clients"))


def choose_client(inv: Inventory, name: str | None) -> Host:
    if name is None:
        if not inv.group("ikev2_clients"):
            inv.one("ikev2_clients")  # its own message: the group is empty
        return inv.group("ikev2_clients")[0]
    if name not in client_names(inv):
        raise InventoryError(f"{inv.path}: '{name}' is not a host of group ikev2_clients",
                             hint=f"use one of {', '.join(client_names(inv)) or '(none)'}")
    return inv.host(name)


def _client(inv: Inventory, h: Host, scoped: bool = False) -> IkeClient:
    c = _section(h, "ikev2_client")
    if "identity" not in c:
        raise InventoryError(f"{h.where('ikev2_client')}: ikev2_client.identity: missing",
                             hint="the identity in the client's certificate (its SAN)")
    lab = inv.lab if inv.lab and h.name in inv.lab.hosts else None
    return IkeClient(name=h.name, identity=c["identity"], user=c.get("user"), profile=c.get("profile"),
                     netns=lab.namespace(h.name) if lab else c.get("netns"),
                     interface=next((e.interface for link in lab.links for e in link.ends if e.host == h.name),
                                    None) if lab else None,
                     vici=(lab.host_dir(h.name) / "strongswan" / "charon.vici") if lab else None,
                     scope=_scope(inv, h) if scoped else None)


def _scope(inv: Inventory, client: Host):
    from .conditions.scope import client_scope
    edges = inv.group("edges")
    if not edges:
        return None
    return client_scope(inv, edges[0], client)


def _gateway(inv: Inventory, h: Host, client: IkeClient, overrides: dict) -> IkeGateway:
    g = {**_section(h, "ikev2_gateway"), **overrides}
    where = h.where("ikev2_gateway")
    for key in ("identity", "address"):
        if key not in g:
            raise InventoryError(f"{where}: ikev2_gateway.{key}: missing")
    lab = inv.lab if inv.lab and h.name in inv.lab.hosts else None
    if lab:
        pki = lab.state_root / "pki" / str(g.get("certificate_profile", "small"))
        ca, cert, key = pki / "ca.pem", pki / f"{client.identity}.cert.pem", pki / f"{client.identity}.key.pem"
    else:
        try:
            ca, cert, key = (Path(g[k]).expanduser() for k in ("ca_file", "client_cert_file", "client_key_file"))
        except KeyError as exc:
            raise InventoryError(f"{where}: ikev2_gateway.{exc.args[0]}: missing",
                                 hint="external gateways need ca_file, client_cert_file and client_key_file") from None
    netns = iface = None
    if lab:
        netns = lab.namespace(h.name)
        iface = next((e.interface for link in lab.links for e in link.ends
                      if e.host == h.name and str(e.address.ip) == str(g["address"])), None)
    radius_cfg = next((r.var("radius_server", {}) for r in inv.group("radius_servers")
                       if any(c.get("name") == h.name for c in r.var("radius_server", {}).get("clients", []))), {})
    radius = radius_cfg.get("identity") or g.get("radius_identity")
    radius_pki = (lab.state_root / "pki" / str(radius_cfg.get("certificate_profile", "small"))) \
        if lab and radius_cfg else None
    return IkeGateway(name=h.name, address=str(g["address"]), identity=str(g["identity"]),
                      netns=netns, outside_interface=iface,
                      vici=(lab.host_dir(h.name) / "strongswan" / "charon.vici") if lab else None, radius_identity=radius, radius_pki=radius_pki,
                      firewall=g.get("firewall"),
                      ping_target=g.get("ping_target"), protected_subnets=tuple(g.get("protected_subnets") or ()),
                      certificate_profile=g.get("certificate_profile"), fragmentation=g.get("fragmentation"),
                      crypto_policy=g.get("crypto_policy"), ca_file=ca, client_cert_file=cert, client_key_file=key)


def _tls_gateway(inv: Inventory, h: Host, section: str) -> TlsGateway:
    s = {**(h.var("ikev2_gateway") or {}), **_section(h, section)}
    where = h.where(section)
    users = s.get("users") or []
    if not users or "name" not in users[0] or "password" not in users[0]:
        raise InventoryError(f"{where}: {section}.users: expected [{{name, password}}] (the test user)")
    user = f"{users[0]['name']}@{s.get('hub', 'LAB')}" if section == "sstp_gateway" else users[0]["name"]
    lab = inv.lab if inv.lab and h.name in inv.lab.hosts else None
    ca = (lab.state_root / "pki" / str(s.get("certificate_profile", "small")) / "ca.pem") if lab else \
        (Path(s["ca_file"]).expanduser() if s.get("ca_file") else None)
    return TlsGateway(name=h.name, address=str(s.get("address") or h.address), identity=str(s["identity"]),
                      port=int(s.get("port", 443)), user=user, password=str(users[0]["password"]), ca_file=ca,
                      ping_target=s.get("ping_target"))
