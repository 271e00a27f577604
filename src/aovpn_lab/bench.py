"""`make bench`: the speed figures, printed, never asserted.

    capture decoding (the pcap reader and IKE decoding the diagnosis uses, on the
    project's own captures; tshark's dissector through pyshark beside it when both are
    installed), lab up (after first setup), lab down, condition switch, the bare IKEv2
    exchange, IKEv2 cells (passing: median of N; failing: per cause, bounded by the give-up
    rule of docs/timing.md), the default run
    serial and on every client at once (pytest-xdist), each with its ratio to one bare
    IKEv2 exchange; a second lab up beside the first and a selection run on both at once;
    through the load balancer: concurrent IKE SAs, setup rate, memory per SA, and the time
    to detect and drain a dead gateway.

Run as root: `python -m aovpn_lab.bench [--repeat N] [--decoding-only]`. Brings the
default lab up and takes it down again (not with ``--decoding-only``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import inventory, paths
from .conditions.base import edge_device
from .conditions.model import Condition
from .ike import probe, profiles
from .lab import lifecycle
from .target import Target


def _fmt(values: list[float]) -> str:
    return (f"median {statistics.median(values):.3f}s  min {min(values):.3f}s  max {max(values):.3f}s  "
            f"(n={len(values)})")


def _captures(extra: list[str]) -> list[Path]:
    """The recorded captures, those of the runs in reports/, and those under `extra`."""
    found = sorted((paths.ROOT / "tests" / "data" / "pcap").glob("*.pcap"))
    for top in [paths.REPORTS, *map(Path, extra)]:
        found += sorted(top.glob("**/captures/**/*.pcap"))
    return found


def _decode_scapy(path: Path) -> int:
    from .capture.ikewire import IkeRecord, classify
    from .capture.packets import datagrams
    from .capture.pcapfile import read_frames

    return sum(isinstance(classify(d), IkeRecord) for d in datagrams(read_frames(path)))


#: what the diagnosis reads of an IKE message, in tshark's field names
_TSHARK_FIELDS = ("ispi", "rspi", "exchangetype", "messageid", "flags", "nextpayload", "length",
                  "typepayload", "notify_msgtype", "frag_number", "frag_total")


def _decode_tshark(path: Path) -> int:
    import pyshark  # not a dependency: only measured when installed

    n = 0
    with pyshark.FileCapture(str(path), display_filter="isakmp", keep_packets=False) as cap:
        for pkt in cap:
            _ = [pkt.isakmp.get_field(name) for name in _TSHARK_FIELDS]
            n += 1
    return n


def _big_capture(files: list[Path], wanted: int, into: Path) -> tuple[Path, int]:
    """One capture of about `wanted` frames, every Ethernet record of `files` repeated (a
    long soak): the same size whichever captures reports/ happens to hold."""
    from scapy.utils import RawPcapWriter

    from .capture.pcapfile import read_frames

    frames = [f for p in files for f in read_frames(p) if f.linktype == 1]
    copies = max(1, -(-wanted // max(1, len(frames))))
    out = into / "big.pcap"
    with RawPcapWriter(str(out), linktype=1) as w:
        w.write_header(None)
        for i in range(copies):
            for f in frames:
                w.write_packet(f.data, sec=int(f.ts) + i, usec=int(f.ts % 1 * 1e6), wirelen=f.wirelen)
    return out, copies * len(frames)


def _decoding(say: Callable[[str, str], None], extra: list[str]) -> None:
    files = _captures(extra)
    if not files:
        say("capture decoding", "no captures found")
        return
    ways: list[tuple[str, Callable[[Path], int]]] = [("scapy readers + IKEv2 layer", _decode_scapy)]
    try:
        import pyshark  # noqa: F401
        if shutil.which("tshark"):
            ways.append(("tshark dissector via pyshark", _decode_tshark))
    except ImportError:
        say("tshark dissector via pyshark", "not installed (pip install pyshark; apt-get install tshark)")
    with tempfile.TemporaryDirectory() as tmp:
        big, frames = _big_capture(files, 10000, Path(tmp))
        for label, decode in ways:
            t = time.monotonic()
            ike = sum(decode(p) for p in files)
            total = time.monotonic() - t
            say(f"{label}: {len(files)} captures", f"{total:.2f}s ({total / len(files) * 1000:.1f} ms a "
                f"capture, {ike} IKE datagrams)")
            t = time.monotonic()
            ike = decode(big)
            total = time.monotonic() - t
            say(f"{label}: one of {frames} frames", f"{total:.2f}s ({frames / total:.0f} frames/s, "
                f"{ike} IKE datagrams)")


def _reporting(say: Callable[[str, str], None], run_dir: Path, inv) -> None:
    """What each run mode adds to a run, on the run just made (a copy of it)."""
    import shutil
    import tempfile

    from .report import compare, page, runfile
    from .report.certify import write_certification
    from .report.pages import build_run_pages
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / run_dir.name
        shutil.copytree(run_dir, folder)
        cells = len(runfile.load(folder).cells)
        t = time.monotonic()
        page.write(folder)
        say(f"report.html alone ({cells} cells)", f"{time.monotonic() - t:.2f}s")
        t = time.monotonic()
        build_run_pages(folder, history_dir=Path(tmp))
        say("every page after a run (+history, screenshot)", f"{time.monotonic() - t:.2f}s")
        t = time.monotonic()
        result = compare.compare(runfile.load(folder), runfile.load(folder))
        compare.write(result, Path(tmp) / "compare")
        say("compare of two finished runs (HTML+JSON)", f"{time.monotonic() - t:.2f}s")
        t = time.monotonic()
        write_certification(folder, inv)
        say("certification (manifest, HTML, PDF)", f"{time.monotonic() - t:.2f}s")


# One cell per cause a failing IKEv2 cell of the default lab has (its gateways fragment with
# RFC 7383, so no cell there loses IP fragments): (cause, client profile, RFC 7383, condition).
FAILING = (("no-proposal-chosen", "windows10-default", True, "open"),
           ("udp-500-blocked", "aovpn-recommended", True, "block-udp-500"),
           ("udp-4500-blocked", "aovpn-recommended", True, "block-udp-4500"))


def _failing_cells(say: Callable[..., None], cell, repeat: int) -> None:
    """Each cause's cell `repeat` times: the give-up rule's effect (docs/timing.md)."""
    for cause, name, frag, condition in FAILING:
        runs = [cell(profiles.get(name).with_fragmentation(frag), condition) for _ in range(repeat)]
        seen = sorted({r.cause for _, r in runs})
        say(f"IKEv2 cell, failing: {cause}", _fmt([s for s, _ in runs])
            + ("" if seen == [cause] else f" (observed: {', '.join(seen)})"), statistics.median(s for s, _ in runs))


def _runs(say: Callable[..., None], inventory_path: str) -> None:
    """The default run one cell after another, then on every client at once (pytest-xdist)."""
    from .report.run import run_suite, workers_for
    for label, workers in (("serial, --workers 1", 1), ("parallel, --workers auto", "auto")):
        n = workers_for(inventory_path, None, None, workers, None)
        t = time.monotonic()
        code = run_suite(inventory=inventory_path, prefix=None, select=None, reports_dir=paths.REPORTS, workers=n)
        took = time.monotonic() - t
        cells = json.loads(((paths.REPORTS / "latest").resolve() / "results.json").read_text())["cells"]
        groups: dict[str, float] = {}
        for c in cells:
            key = "load balancer (one group)" if "test_load_balancing" in c["nodeid"] else "every other cell"
            groups[key] = groups.get(key, 0.0) + sum(c.get("timings", {}).values())
        say(f"default run, {label} ({n} worker{'s' if n > 1 else ''})",
            f"{took:.1f}s, exit {code}, {len(cells)} cells", took)
        for key, secs in groups.items():
            say(f"  cell time: {key}", f"{secs:.1f}s")


def _side_by_side(say: Callable[..., None], inventory_path: str) -> None:
    """A second lab (prefix bench2, its own management network) up beside the first, one
    selection run on each at the same time, and its down. Each run is its own `aovpn-lab
    run` process, as an engineer starts them: pytest keeps its plugins per process."""
    import subprocess
    side = "bench2"
    t = time.monotonic()
    lifecycle.up(inventory.load(inventory_path, prefix=side), quiet=True)
    say("second lab up beside the first (prefix bench2)", f"{time.monotonic() - t:.2f}s", time.monotonic() - t)
    try:
        selection = "test_ikev2 and aovpn-recommended and not eap"
        t = time.monotonic()
        runs = [subprocess.Popen([sys.executable, "-m", "aovpn_lab.cli", "--inventory", inventory_path,
                                  *(["--prefix", prefix] if prefix else []), "run", "-k", selection, "--workers", "2",
                                  "--reports", str(paths.REPORTS / "bench-side-by-side" / (prefix or "default"))],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for prefix in (None, side)]
        codes = [r.wait() for r in runs]
        say("both labs, one selection each, at once", f"{time.monotonic() - t:.1f}s, exit {codes}",
            time.monotonic() - t)
    finally:
        t = time.monotonic()
        lifecycle.down(inventory.load(inventory_path, prefix=side), quiet=True)
        say("second lab down", f"{time.monotonic() - t:.2f}s", time.monotonic() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="aovpn-lab-bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10, help="passing cells to time (default: %(default)s)")
    ap.add_argument("--inventory", default=str(paths.INVENTORIES / "lab"))
    ap.add_argument("--captures", action="append", default=[], metavar="DIR",
                    help="also decode the captures of this run directory (repeatable)")
    ap.add_argument("--decoding-only", action="store_true", help="only the capture decoding figures (no lab)")
    args = ap.parse_args(argv)
    out = []

    timed: dict[str, float] = {}  # figures in seconds, for their ratio to the bare exchange
    bare = 0.0

    def say(label: str, value: str, seconds: float | None = None) -> None:
        line = f"{label:<44} {value}"
        out.append(line)
        print(line, flush=True)
        if seconds is not None:
            timed[label] = seconds

    _decoding(say, args.captures)
    if args.decoding_only:
        return 0
    inv = inventory.load(args.inventory)

    lifecycle.down(inv, quiet=True)
    t = time.monotonic()
    lifecycle.up(inv, quiet=True)
    say("lab up (after first setup)", f"{time.monotonic() - t:.2f}s", time.monotonic() - t)
    t = time.monotonic()
    lifecycle.up(inv, quiet=True)
    say("lab up again (idempotent, nothing to change)", f"{time.monotonic() - t:.2f}s", time.monotonic() - t)
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

            def cell(profile: profiles.ClientProfile, condition: str) -> tuple[float, probe.IkeProbeResult]:
                # as a conformance cell does it: condition, path state reset, attempt with its differential test
                t0 = time.monotonic()
                target.reset_path_state()
                edge.apply(Condition.parse(condition))
                r = probe.run_probe(target.client.vici, ike, profile, netns=target.client.netns,
                                    ping=gw.ping_target, rule=target.give_up)
                return time.monotonic() - t0, r

            passing = [cell(profiles.get("aovpn-recommended"), "open") for _ in range(args.repeat)]
            assert all(r.connected for _, r in passing), "a passing cell did not connect"
            bare = statistics.median(r.elapsed_ms / 1000 for _, r in passing)
            say("bare IKEv2 exchange (IKE_SA_INIT+IKE_AUTH, charon)", _fmt([r.elapsed_ms / 1000 for _, r in passing]))
            say("IKEv2 cell, passing (condition+connect+ping)",
                _fmt([s for s, _ in passing]), statistics.median(s for s, _ in passing))
            _failing_cells(say, cell, max(3, args.repeat // 2))
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
                say("SSTP cell (TLS, MS-CHAPv2, IPCP, ping, disconnect)", _fmt(times), statistics.median(times))
        if inv.group("load_balancers"):
            from .balancer.lab import LabBalancer
            from .balancer.scale import balancer_scale
            balancer_scale(LabBalancer.from_inventory(inv), say)
        _runs(say, args.inventory)
        _reporting(say, (paths.REPORTS / "latest").resolve(), inv)
        _side_by_side(say, args.inventory)
    finally:
        t = time.monotonic()
        lifecycle.down(inv, quiet=True)
        say("lab down", f"{time.monotonic() - t:.2f}s", time.monotonic() - t)
    if bare:
        out += ["", f"ratio to the bare IKEv2 exchange ({bare * 1000:.0f} ms, median):"]
        width = max(map(len, timed), default=0)
        out += [f"  {label:<{width}} {secs / bare:8.0f}x" for label, secs in timed.items()]
    print("\n".join(["", "summary:"] + out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
