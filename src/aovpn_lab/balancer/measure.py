"""One crowd run through the balancer in one mode: who connected, through which gateway,
and what the gateways saw - measured on both sides, never assumed from the mode.

    run = crowd_run(lab, "per-flow", count=50, captures=cell_dir)     # doctest: +SKIP
    run.summary()["split_clients"]

Where each client's packets went comes from the captures (the client's side, and each
gateway's balancer-facing interface), matched by the IKE initiator SPI, which every IKE
message carries in clear; connected comes from the client's own SA list, which gateway
served it from the pool its virtual address belongs to (each gateway has its own), and
what each gateway believes from its own SA list.
"""
from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import paths
from ..capture.capture import Capture, running
from .crowd import Attempt, Crowd, Timers
from .lab import LabBalancer

PROFILE = paths.ROOT / "profiles" / "load-balancing.yml"
IKE_BPF = "udp port 500 or udp port 4500"


@functools.cache
def settings() -> dict[str, Any]:
    """profiles/load-balancing.yml, read once (the verdicts and every crowd consult it; read only)."""
    return yaml.safe_load(PROFILE.read_text())


@dataclass
class CrowdRun:
    mode: str
    attempts: dict[str, Attempt]
    client_sas: dict[str, dict[str, Any]]
    gateway_sas: dict[str, list[dict[str, Any]]]
    served_by: dict[str, str | None]             # client address -> gateway (from its virtual address)
    seconds: float
    captures: dict[str, Path] = field(default_factory=dict)   # "client" or a gateway name -> pcap
    at_once: int = 0                             # clients connecting at the same time (burst)
    paths_by_client: dict[str, Any] = field(default_factory=dict)  # from the captures

    @property
    def connected(self) -> list[str]:
        return [a for a, t in self.attempts.items() if t.connected]

    @property
    def failed(self) -> list[str]:
        return [a for a, t in self.attempts.items() if not t.connected]

    def spread(self) -> dict[str, int]:
        counts = {name: 0 for name in self.gateway_sas}
        for a in self.connected:
            gw = self.served_by.get(a)
            if gw is not None:
                counts[gw] = counts.get(gw, 0) + 1
        return counts

    def sources_seen(self) -> dict[str, dict[str, int]]:
        """Per gateway: how many established SAs come from each remote address."""
        out: dict[str, dict[str, int]] = {}
        for gw, sas in self.gateway_sas.items():
            seen: dict[str, int] = {}
            for sa in sas:
                if sa.get("state") == "ESTABLISHED":
                    seen[sa["remote_host"]] = seen.get(sa["remote_host"], 0) + 1
            out[gw] = seen
        return out


def burst(mode: str, concurrency: int) -> int:
    """How many clients connect at once in `mode`. Behind a balancer that translates every
    client to its own address, each half-open SA of a burst counts against that one source
    on a gateway, and charon ignores a source from block_threshold of them on
    (profiles/charon.yml). Such a crowd stays below it, so its cells measure the balancer,
    not the gateways' DoS protection (with 8 at a time, a run of the affinity-keeping
    proxy's cell once had a client's IKE_SA_INIT go unanswered).

    >>> burst("affinity", 8), burst("snat-proxy", 8), burst("snat-proxy", 2)
    (8, 4, 2)
    """
    if settings()["modes"][mode]["sources"] != "balancer-address":
        return concurrency
    from ..ike.profiles import charon_settings
    return min(concurrency, int(charon_settings()["gateway"]["block_threshold"]) - 1)


def crowd_run(lab: LabBalancer, mode: str, *, count: int, captures: Path | None = None,
              concurrency: int = 4, timers: Timers | None = None, crowd: Crowd | None = None) -> CrowdRun:
    """Switch the balancer to `mode`, connect `count` clients, read both sides and clean
    up; with the caller's own `crowd` (entered), its clients stay connected."""
    lab.switch(mode, [b.name for b in lab.config.backends], flush=True)
    lab.clear_gateways()
    own = crowd is None
    crowd = crowd or Crowd.for_lab(lab.inventory, count=count, concurrency=burst(mode, concurrency),
                                   timers=timers or Timers())
    with contextlib.ExitStack() as stack:
        if own:
            stack.enter_context(crowd)
        pcaps = _start_captures(stack, lab, crowd, captures) if captures is not None else {}
        began = time.monotonic()
        attempts = crowd.connect()
        seconds = time.monotonic() - began
        client_sas = crowd.sas()
        gateway_sas = lab.gateway_sas()
    if own:
        lab.clear_gateways()
    served = {a: lab.backend_of_pool(sa.get("virtual_ip")) for a, sa in client_sas.items()}
    run = CrowdRun(mode=mode, attempts=attempts, client_sas=client_sas, gateway_sas=gateway_sas,
                   served_by=served, seconds=seconds, captures=pcaps, at_once=crowd.concurrency)
    return run


def _start_captures(stack: contextlib.ExitStack, lab: LabBalancer, crowd: Crowd, directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {"client": directory / "client.pcap"}
    points = [Capture(crowd.netns, crowd.interface, out["client"], IKE_BPF)]
    assert lab.inventory.lab is not None
    for b in lab.config.backends:
        iface = _interface_with(lab, b.name, b.address)
        out[b.name] = directory / f"{b.name}.pcap"
        points.append(Capture(lab.gateway_netns[b.name], iface, out[b.name], IKE_BPF))
    stack.enter_context(running(points))
    return out


def _interface_with(lab: LabBalancer, host: str, address: str) -> str:
    assert lab.inventory.lab is not None
    for link in lab.inventory.lab.links:
        for e in link.ends:
            if e.host == host and str(e.address.ip) == address:
                return e.interface
    return "any"
