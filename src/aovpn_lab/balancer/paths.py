"""Where each client's IKE messages went, for a crowd run: the captures read by
:mod:`aovpn_lab.balancer.affinity`, with what the client's own SA list says."""
from __future__ import annotations

from typing import Any

from .affinity import analyse, summarise
from .measure import CrowdRun


def split_clients(run: CrowdRun) -> tuple[list[str], dict[str, Any]]:
    """(split client addresses, per-client table) of a run with captures."""
    if not run.captures:
        return [], {}
    backends = {k: v for k, v in run.captures.items() if k != "client"}
    analysis = analyse(run.captures["client"], backends, vip=None)
    summary = summarise(analysis, connected=run.connected)
    table = {}
    for address, client in analysis.clients.items():
        table[address] = {"UDP 500 reached": client.udp500, "UDP 4500 reached": client.udp4500,
                          "split": client.split, "connected": address in run.attempts and run.attempts[address].connected,
                          "attempts (initiator SPIs)": len(client.spis),
                          "source seen by the gateway": {b: sorted({f"{a}:{p}" for a, p in s})
                                                         for b, s in client.sources.items()}}
    run.paths_by_client = table
    return list(summary.split), {"summary": summary.to_json(), "clients": table}
