"""Many real clients: N addresses on one lab host, each its own IKE SA through the VIP.

    with Crowd.for_lab(inventory, count=50) as crowd:          # doctest: +SKIP
        outcome = crowd.connect()                              # {address: Attempt}
        sas = crowd.sas()                                      # what the client side holds now

One charon (a private one, in the crowd host's namespace) initiates from every address:
strongSwan picks the source address per connection (local_addrs), so the balancer sees
N distinct clients. Each client has its own machine certificate (crowd-<i>.example.net,
issued by the pki role), as every Windows device has. The clients connect a few at a time,
like devices coming online, not all in one millisecond: a burst would measure the
gateways' DoS protection (half-open limits) rather than the balancer.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import tool
from ..errors import InventoryError
from ..ike.charon import PrivateCharon
from ..ike import profiles as client_profiles
from ..ike.eap import split_pem
from ..ike.giveup import GiveUpRule, RoundTrips, WatchedInitiation
from ..ike.session import ViciSession, _decode
from ..inventory import Inventory
from .config import BalancerConfig
from .config import Crowd as CrowdSpec

CHILD = "corp"


class CrowdUnavailable(InventoryError):
    """The crowd cannot run against the lab as provisioned (a fact of the lab, not a failure)."""


@dataclass
class Attempt:
    address: str
    identity: str
    connected: bool
    seconds: float
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "identity": self.identity, "connected": self.connected,
                "seconds": round(self.seconds, 3), "error": self.error}


@dataclass
class Timers:
    """Short lab lifetimes, so a cell sees rekeys and dead peer detection happen."""
    dpd_delay: int = 0          # seconds; 0: no DPD
    ike_rekey: int = 0          # seconds; 0: charon's default (4 h)
    child_rekey: int = 0
    dpd_action: str = "clear"   # restart: re-initiate through the VIP when the gateway is gone
    # charon's retransmissions before a peer counts as dead (None: profiles/charon.yml's 4,
    # ~4.5 s; 2: ~1.2 s after the first unanswered DPD)
    retransmit_tries: int | None = None


@dataclass
class Crowd:
    netns: str
    interface: str
    addresses: list[str]
    vip: str
    pki: Path
    remote_id: str
    remote_ts: str
    profile: str = "aovpn-recommended"
    concurrency: int = 4
    timers: Timers = field(default_factory=Timers)
    charon: PrivateCharon | None = None
    keep_log: Path | None = None  # where charon's log is copied when the crowd ends (evidence)
    give_up: GiveUpRule = field(default_factory=GiveUpRule.from_settings)  # the lab's rule

    @classmethod
    def for_lab(cls, inv: Inventory, *, count: int | None = None, **options: Any) -> "Crowd":
        lb_host = inv.one("load_balancers")
        config = BalancerConfig.from_vars(lb_host.var("load_balancer"), where=lb_host.where("load_balancer"))
        crowd = config.crowd
        if crowd is None:
            raise InventoryError(f"{lb_host.where('load_balancer')}: load_balancer.clients is missing",
                                 hint="write clients: {count: 50, max: 200, host: probe, range: 198.18.16.0/20}")
        n = crowd.count if count is None else count
        if n > crowd.max:
            raise InventoryError(f"{lb_host.where('load_balancer')}: {n} clients asked for, but load_balancer.clients"
                                 f".max is {crowd.max} (one machine certificate each is issued at lab up)",
                                 hint=f"raise clients.max to {n} and run `aovpn-lab lab up` again")
        assert inv.lab is not None
        from .. import variants
        from .measure import settings
        options.setdefault("concurrency", int(settings()["concurrency"]))  # profiles/load-balancing.yml
        # the gateways as provisioned: a variant may have switched their certificate profile
        gw = {**(inv.host(config.backends[0].name).var("ikev2_gateway") or {}),
              **variants.provisioned(inv.lab.state_dir).ikev2_gateway}
        profile = gw.get("certificate_profile") or "small"
        pki = inv.lab.state_root / "pki" / profile
        if not (pki / f"{crowd.identity(n)}.cert.pem").is_file():
            raise CrowdUnavailable(f"the gateways use certificate profile '{profile}', in which the pki role issued "
                                   f"no crowd certificates (it issues {crowd.max} in the balanced gateways' own profile)",
                                   hint="run the load-balancing cells on a variant that keeps the gateways' profile")
        return cls(netns=inv.lab.namespace(crowd.host), interface=_interface(inv, crowd.host),
                   addresses=crowd.addresses(n), vip=config.vip,
                   pki=pki, remote_id=gw.get("identity", "vpn.example.net"),
                   remote_ts=(gw.get("protected_subnets") or ["0.0.0.0/0"])[0], **options)

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> "Crowd":
        self._addresses("add")
        try:
            self.charon = PrivateCharon(netns=self.netns, retransmit_tries=self.timers.retransmit_tries).__enter__()
            self._load()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.charon is not None and self.keep_log is not None and self.charon.workdir is not None:
            import shutil
            self.keep_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.charon.log, self.keep_log)
        if self.charon is not None:
            self.charon.__exit__(None, None, None)
            self.charon = None
        self._addresses("del")

    def _addresses(self, op: str) -> None:
        client_addresses(self.netns, self.interface, self.addresses, op)

    def identity(self, index: int) -> str:
        return CrowdSpec.identity(index)

    def name(self, address: str) -> str:
        return "c-" + address.replace(".", "-")

    def _load(self) -> None:
        profile = client_profiles.get(self.profile)
        ca = (self.pki / "ca.pem").read_bytes()
        assert self.charon is not None
        with ViciSession(self.charon.vici, timeout=30) as s:
            s.load_cert(ca, flag="CA")
            for pem in split_pem((self.pki / "intermediates.pem").read_bytes()):
                s.load_cert(pem, flag="CA")
            for i, address in enumerate(self.addresses, start=1):
                ident = self.identity(i)
                s.load_key((self.pki / f"{ident}.key.pem").read_bytes())
                s.load_conn(self.name(address), self._conn(address, ident, profile, ca))

    def _conn(self, address: str, ident: str, profile, ca: bytes) -> dict[str, Any]:
        t = self.timers
        conn: dict[str, Any] = {
            "version": "2", "local_addrs": [address], "remote_addrs": [self.vip],
            "proposals": list(profile.ike), "fragmentation": "yes" if profile.fragmentation else "no",
            # ESP-in-UDP on 4500 from IKE_AUTH on, as behind any NAT (the lab's ESP is
            # always encapsulated): the second port the balancer must keep together.
            "encap": "yes", "send_cert": "always", "keyingtries": "1",
            # An address from the gateway's pool (gateways require the request; each has its
            # own pool, so the address also tells which gateway served the client).
            "vips": ["0.0.0.0"],
            "local": {"auth": "pubkey", "certs": [(self.pki / f"{ident}.cert.pem").read_bytes()], "id": ident},
            "remote": {"auth": "pubkey", "id": self.remote_id, "cacerts": [ca]},
            # policies = no: N tunnels to the same subnet; only the SAs matter here.
            "children": {CHILD: {"remote_ts": [self.remote_ts], "esp_proposals": list(profile.esp),
                                 "start_action": "none", "policies": "no", "dpd_action": t.dpd_action}},
        }
        if t.dpd_delay:
            conn["dpd_delay"] = f"{t.dpd_delay}s"
        # Explicit hard lifetimes and no randomness: with only rekey_time set, charon makes the
        # hard lifetime the same instant, and an SA would expire rather than rekey.
        if t.ike_rekey:
            conn.update(rekey_time=f"{t.ike_rekey}s", over_time=f"{max(2, t.ike_rekey // 2)}s", rand_time="0s")
        if t.child_rekey:
            conn["children"][CHILD].update(rekey_time=f"{t.child_rekey}s",
                                           life_time=f"{t.child_rekey + max(2, t.child_rekey // 2)}s",
                                           rand_time="0s")
        return conn

    # -- what it does --------------------------------------------------------------------
    def connect(self, addresses: list[str] | None = None, timeout: float = 10.0) -> dict[str, Attempt]:
        """Initiate every client (a few at a time); {address: Attempt}."""
        assert self.charon is not None
        chosen = addresses or self.addresses
        index = {a: i for i, a in enumerate(self.addresses, start=1)}

        # Two vici connections per worker, kept for all its clients (one streams the initiate,
        # the other gives it up): charon's vici socket has a short listen backlog, and a
        # connection per attempt is refused under load (EAGAIN).
        local = threading.local()
        opened: list[ViciSession] = []

        def sessions() -> tuple[ViciSession, ViciSession]:
            if not hasattr(local, "vici"):
                local.vici = tuple(ViciSession(self.charon.vici, timeout=timeout + 5).__enter__() for _ in range(2))
                opened.extend(local.vici)
            return local.vici

        # Given up like a cell's attempt (ike/giveup.py): a crowd behind a balancer that splits
        # UDP 500 and 4500, or sends some clients to a hung gateway, does not wait for charon's
        # own retransmissions to run out. Every client is on the same path (one namespace, one
        # VIP): their IKE_SA_INIT round trips are samples for all of them.
        trips = RoundTrips(self.give_up)

        def one(address: str) -> Attempt:
            began = time.monotonic()
            initiating, terminating = sessions()
            w = WatchedInitiation(initiating, self.charon.vici, self.name(address), CHILD, timeout,
                                  self.give_up, trips, terminator=terminating).wait()
            # charon's own last words on a failure: why, in its terms (evidence, not a verdict)
            error = w.gave_up_text() if w.gave_up else w.error
            tail = w.lines[-3:] if not w.ok else []
            return Attempt(address, self.identity(index[address]), w.ok, time.monotonic() - began,
                           "; ".join([error, *tail]) if error else "")

        try:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                return {a.address: a for a in pool.map(one, chosen)}
        finally:
            for s in opened:
                s.__exit__(None, None, None)

    def sas(self) -> dict[str, dict[str, Any]]:
        """The client side's IKE SAs now: {address: {state, remote_host, remote_port, ike_id, spi_i, rekeyed}}."""
        assert self.charon is not None
        out: dict[str, dict[str, Any]] = {}
        with ViciSession(self.charon.vici, timeout=30) as s:
            for entry in s.s.list_sas():
                for name, raw in entry.items():
                    sa = _decode(raw)
                    out[sa.get("local-host", name)] = {
                        "state": sa.get("state"), "remote_host": sa.get("remote-host"),
                        "remote_port": sa.get("remote-port"), "ike_id": sa.get("uniqueid"),
                        "spi_i": sa.get("initiator-spi"), "established_s": int(sa.get("established", 0) or 0),
                        "virtual_ip": (sa.get("local-vips") or [None])[0],
                        "children": {c.get("name", k): {"state": c.get("state"), "spi_in": c.get("spi-in"),
                                                        "installed_s": int(c.get("install-time", 0) or 0)}
                                     for k, c in (sa.get("child-sas") or {}).items()}}
        return out

    def terminate_all(self) -> None:
        assert self.charon is not None
        with ViciSession(self.charon.vici, timeout=30) as s:
            for address in self.addresses:
                s.terminate(self.name(address))


def client_addresses(netns: str, interface: str, addresses: list[str], op: str) -> None:
    """Add (op=add) or remove (del) client addresses as /32s on the crowd host's link."""
    # One `ip -batch` for all of them: a process per address would cost ~2 ms each.
    lines = "".join(f"address {op} {a}/32 dev {interface}\n" for a in addresses)
    r = tool.run(["ip", "-force", "-batch", "-"], netns=netns, input=lines,
                 step=f"{op} {len(addresses)} client addresses on {interface}")
    if op == "add":
        r.check(hint="are the addresses already there from an interrupted run? `aovpn-lab lab down` clears them")


def _interface(inv: Inventory, host: str) -> str:
    assert inv.lab is not None
    for link in inv.lab.links:
        for end in link.ends:
            if end.host == host:
                return end.interface
    raise InventoryError(f"{inv.path}: the crowd host '{host}' has no data-plane link",
                         hint="put load_balancer.clients.host on a host behind the edge (probe)")
