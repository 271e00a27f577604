"""`make bench`: how many IKE SAs the lab sustains through the balancer, printed, never
asserted - concurrent SAs, setup rate, memory per SA on the gateways, and the time to
detect and drain a dead gateway."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .crowd import Crowd, Timers
from .lab import LabBalancer
from .scenarios import VICTIM, live, monitor_running


def rss_kib(pids: list[int]) -> int:
    """Resident memory of these processes, from /proc (KiB)."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def balancer_scale(lab: LabBalancer, say: Callable[[str, str], None], count: int = 200,
                   concurrency: int = 4) -> None:
    lab.switch("affinity", [b.name for b in lab.config.backends], flush=True)
    lab.clear_gateways()
    gateways = [b.name for b in lab.config.backends]
    before = {g: rss_kib(lab.charon(g).pids()) for g in gateways}
    timers = Timers(dpd_delay=2, dpd_action="restart")
    with monitor_running(lab, "ike"), Crowd.for_lab(lab.inventory, count=count, concurrency=concurrency,
                                                     timers=timers) as crowd:
        lab.wait(lambda: len(live(lab)) == len(gateways), 10)
        t0 = time.monotonic()
        attempts = crowd.connect()
        took = time.monotonic() - t0
        ok = sum(a.connected for a in attempts.values())
        say(f"IKE SAs through the balancer (affinity, {count} clients, {concurrency} at a time)",
            f"{ok} established, {count - ok} failed, in {took:.2f}s = {ok / took:.0f} SAs/s")
        after = {g: rss_kib(lab.charon(g).pids()) for g in gateways}
        per_gw = {g: sum(1 for sa in lab.gateway_sas()[g] if sa.get("state") == "ESTABLISHED") for g in gateways}
        grown = sum(after[g] - before[g] for g in gateways)
        say("  gateways' charon memory per established SA",
            f"{grown / max(ok, 1):.1f} KiB ({', '.join(f'{g}: {per_gw[g]} SAs, +{after[g] - before[g]} KiB' for g in gateways)})")
        say("  client charon resident memory / SAs", f"{rss_kib(crowd.charon.daemon.pids()) / max(ok, 1):.1f} KiB"
            if crowd.charon and crowd.charon.daemon else "unknown")
        victims = [a for a, sa in crowd.sas().items() if lab.backend_of_pool(sa.get("virtual_ip")) == VICTIM]
        lab.fail_gateway(VICTIM, "stopped")
        try:
            detect = lab.wait(lambda: VICTIM not in live(lab), 15)

            def drained() -> bool:
                sas = crowd.sas()
                return all(sas.get(a, {}).get("state") == "ESTABLISHED"
                           and lab.backend_of_pool(sas[a].get("virtual_ip")) not in (None, VICTIM) for a in victims)
            drain = lab.wait(drained, 60, step=0.5)
        finally:
            lab.restore_gateway(VICTIM)
        say(f"dead gateway ({VICTIM}, charon stopped, {len(victims)} clients on it)",
            (f"detected by the IKE monitor in {detect:.2f}s; " if detect is not None else "not detected in 15 s; ")
            + (f"all its clients re-established elsewhere after {drain:.1f}s" if drain is not None
               else "not all re-established within 60 s"))
    lab.clear_gateways()
