"""The system under test as the suite sees it: IKEv2 gateways and the client to test from.

Built from the inventory, for the embedded lab (credentials from the lab's PKI, the
client's charon and namespace) and for real deployments (paths given in host vars).

    >>> t = Target.from_inventory(inventory.load("inventories/lab"))   # doctest: +SKIP
    >>> t.gateways[0].name, t.client.netns
    ('gw1', 'aovpn-client')
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import InventoryError
from .inventory import Host, Inventory


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
    netns: str | None = None              # lab gateways: their namespace (for far-end captures)
    outside_interface: str | None = None  # lab gateways: the interface clients reach


    def facts(self):
        """What the reason model knows before testing: policy, fragmentation, predicted IKE_AUTH sizes."""
        from .expectations import GatewayFacts
        return GatewayFacts(policy=self.crypto_policy, fragmentation=self.fragmentation,
                            ike_auth_request=_predicted_size(self.client_cert_file, self.chain_file, "initiator"),
                            ike_auth_response=_predicted_size(self.gateway_cert_file, self.chain_file, "responder"))

    def probe_target(self, local_id: str | None):
        """The credentials and selectors a client uses to connect to this gateway."""
        from .ike.probe import IkeTarget
        return IkeTarget(gateway=self.address, remote_id=self.identity, ca_pem=self.ca_file.read_bytes(),
                         cert_pem=self.client_cert_file.read_bytes(), key_pem=self.client_key_file.read_bytes(),
                         local_id=local_id,
                         remote_ts=self.protected_subnets[0] if self.protected_subnets else "0.0.0.0/0",
                         chain_pem=self.chain_file.read_bytes() if self.chain_file else b"")

    @property
    def gateway_cert_file(self) -> Path | None:
        cand = self.ca_file.parent / f"{self.identity}.cert.pem"
        return cand if cand.is_file() else None

    @property
    def chain_file(self) -> Path | None:
        cand = self.ca_file.parent / "chain.pem"
        return cand if cand.is_file() else None


def _predicted_size(leaf: Path | None, chain: Path | None, role: str) -> int | None:
    """Predicted first IKE_AUTH of one side from the certificates it sends (None: unknown)."""
    if leaf is None or not leaf.is_file():
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from .certs.sizemodel import predict_ike_auth_size
    certs = x509.load_pem_x509_certificates(leaf.read_bytes())
    if chain is not None and chain.stat().st_size:
        certs += x509.load_pem_x509_certificates(chain.read_bytes())
    sizes = [len(c.public_bytes(Encoding.DER)) for c in certs]
    return predict_ike_auth_size(sizes, "pubkey", certs[0].public_key(), role=role)


@dataclass(frozen=True)
class IkeClient:
    name: str
    identity: str
    profile: str | None
    netns: str | None       # lab client: its namespace; None: this host
    vici: Path | None       # a running charon to reuse; None: start a private one


@dataclass(frozen=True)
class Target:
    inventory: Inventory
    gateways: tuple[IkeGateway, ...]
    client: IkeClient

    variant: str = "default"

    @classmethod
    def from_inventory(cls, inv: Inventory) -> "Target":
        """Gateways as provisioned: for the lab, with the recorded variant's overrides."""
        from . import variants
        variant = variants.provisioned(inv.lab.state_dir) if inv.lab else variants.get("default")
        client_host = inv.one("ikev2_clients")
        client = _client(inv, client_host)
        gateways = tuple(_gateway(inv, h, client, variant.ikev2_gateway if inv.lab and h.name in inv.lab.hosts
                                  else {}) for h in inv.group("ikev2_gateways"))
        if not gateways:
            raise InventoryError(f"{inv.path}: group 'ikev2_gateways' has no hosts",
                                 hint="describe at least one gateway (see inventories/examples/)")
        return cls(inv, gateways, client, variant.name)


def _section(h: Host, key: str) -> dict:
    value = h.var(key)
    if not isinstance(value, dict):
        raise InventoryError(f"{h.where(key) if key in h.origin else 'inventory'}: host '{h.name}': "
                             f"{key}: expected a mapping", hint=f"see inventories/lab/host_vars/{h.name}.yml")
    return value


def _client(inv: Inventory, h: Host) -> IkeClient:
    c = _section(h, "ikev2_client")
    if "identity" not in c:
        raise InventoryError(f"{h.where('ikev2_client')}: ikev2_client.identity: missing",
                             hint="the identity in the client's certificate (its SAN)")
    lab = inv.lab if inv.lab and h.name in inv.lab.hosts else None
    return IkeClient(name=h.name, identity=c["identity"], profile=c.get("profile"),
                     netns=lab.namespace(h.name) if lab else None,
                     vici=(lab.host_dir(h.name) / "strongswan" / "charon.vici") if lab else None)


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
    return IkeGateway(name=h.name, address=str(g["address"]), identity=str(g["identity"]),
                      netns=netns, outside_interface=iface,
                      ping_target=g.get("ping_target"), protected_subnets=tuple(g.get("protected_subnets") or ()),
                      certificate_profile=g.get("certificate_profile"), fragmentation=g.get("fragmentation"),
                      crypto_policy=g.get("crypto_policy"), ca_file=ca, client_cert_file=cert, client_key_file=key)
