"""`make bench`: the speed figures, printed, never asserted.

    lab up (after first setup), lab down, condition switch, IKEv2 cell (passing: median
    of N; failing: bounded by the retransmit policy), whole default matrix.

Run as root: `python -m aovpn_lab.bench [--repeat N]`. Brings the default lab up and
takes it down again.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from . import inventory, paths
from .conditions.base import edge_device
from .conditions.model import Condition
from .ike import probe, profiles
from .lab import lifecycle
from .target import Target


def _fmt(values: list[float]) -> str:
    return (f"median {statistics.median(values):.3f}s  min {min(values):.3f}s  max {max(values):.3f}s  "
            f"(n={len(values)})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="aovpn-lab-bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10, help="passing cells to time (default: %(default)s)")
    ap.add_argument("--inventory", default=str(paths.INVENTORIES / "lab"))
    args = ap.parse_args(argv)
    inv = inventory.load(args.inventory)
    out = []

    def say(label: str, value: str) -> None:
        line = f"{label:<44} {value}"
        out.append(line)
        print(line, flush=True)

    lifecycle.down(inv, quiet=True)
    t = time.monotonic()
    lifecycle.up(inv, quiet=True)
    say("lab up (after first setup)", f"{time.monotonic() - t:.2f}s")
    t = time.monotonic()
    lifecycle.up(inv, quiet=True)
    say("lab up again (idempotent, nothing to change)", f"{time.monotonic() - t:.2f}s")
    try:
        target = Target.from_inventory(inv)
        gw = target.gateways[0]
        ike = gw.probe_target(target.client)
        with edge_device(inv) as edge:
            switches = []
            for text in ["drop-ip-fragments", "mtu:1280", "block-udp-500", "open"] * 3:
                t = time.monotonic()
                edge.apply(Condition.parse(text))
                switches.append(time.monotonic() - t)
            say("condition switch over netmiko", _fmt(switches))

            def cell(profile: str, condition: str) -> tuple[float, probe.IkeProbeResult]:
                t0 = time.monotonic()
                edge.apply(Condition.parse(condition))
                r = probe.run_probe(target.client.vici, ike, profiles.get(profile), netns=target.client.netns,
                                    ping=gw.ping_target)
                return time.monotonic() - t0, r

            passing = [cell("aovpn-recommended", "open") for _ in range(args.repeat)]
            assert all(r.connected for _, r in passing), "a passing cell did not connect"
            say("IKEv2 cell, passing (condition+connect+ping)", _fmt([s for s, _ in passing]))
            say("  of which IKE+child SA setup (charon)", _fmt([r.elapsed_ms / 1000 for _, r in passing]))
            for prof, cond in (("windows10-default", "open"), ("aovpn-recommended", "block-udp-500"),
                               ("aovpn-recommended", "block-udp-4500")):
                s, r = cell(prof, cond)
                say(f"IKEv2 cell, failing: {cond}/{prof}", f"{s:.2f}s -> {r.cause}")
            edge.apply(Condition.parse("open"))
            if target.sstp_gateways:
                from .sstp.probe import probe_sstp
                sg = target.sstp_gateways[0]
                times = []
                for _ in range(5):
                    t0 = time.monotonic()
                    r = probe_sstp(sg.address, sg.port, user=sg.user, password=sg.password, ca_file=str(sg.ca_file),
                                   sni=sg.identity, ping=sg.ping_target, timeout=10, netns=target.client.netns)
                    assert r.connected, f"SSTP did not connect: {r.cause}"
                    times.append(time.monotonic() - t0)
                say("SSTP cell (TLS, MS-CHAPv2, IPCP, ping, disconnect)", _fmt(times))
        reports = paths.REPORTS
        t = time.monotonic()
        from .report.run import run_suite
        code = run_suite(inventory=args.inventory, prefix=None, select=None, reports_dir=reports)
        say("whole default IKEv2 matrix (aovpn-lab run)", f"{time.monotonic() - t:.1f}s, exit {code}")
    finally:
        t = time.monotonic()
        lifecycle.down(inv, quiet=True)
        say("lab down", f"{time.monotonic() - t:.2f}s")
    print("\n".join(["", "summary:"] + out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
