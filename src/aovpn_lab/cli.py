"""aovpn-lab: the command line.

    aovpn-lab lab up | down | status [--json]
    aovpn-lab run [--inventory PATH] [--vault-password-file FILE | --ask-vault-pass] [-k EXPR]
                  [--history DIR] [--rerun-failures N]
    aovpn-lab report rebuild DIR
    aovpn-lab report merge RUN_DIR... --out DIR [--site NAME=DIR]
    aovpn-lab compare BASELINE CANDIDATE
    aovpn-lab certify --inventory PATH | --verify DIR
    aovpn-lab audit [--inventory PATH] [--host NAME] [--from DIR] [--json]
    aovpn-lab probe ikev2 --gateway ADDR --remote-id ID --ca CA.pem --cert C.pem --key K.pem
    aovpn-lab certs inspect FILE...
    aovpn-lab diagnose --client CLIENT.pcap --server SERVER.pcap
    aovpn-lab scan --gateway ADDR [--far-netns NS --far-interface IF]
    aovpn-lab lb render --vendor {f5,netscaler,kemp,all} [--inventory PATH] [--host NAME] [--out DIR]

Errors a user can fix print one line and exit non-zero; Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__, paths
from .errors import AovpnError

DEFAULT_INVENTORY = paths.INVENTORIES / "lab"


def _vault(args: argparse.Namespace):
    from .inventory.vault import Vault
    return Vault.of(args.vault_password_file, args.ask_vault_pass)


def _inventory(args: argparse.Namespace):
    from . import inventory
    return inventory.load(args.inventory, prefix=args.prefix, vault=_vault(args))


def cmd_lab_up(args: argparse.Namespace) -> int:
    from .lab import lifecycle
    result = lifecycle.up(_inventory(args), quiet=args.quiet, variant=args.variant)
    print(json.dumps(result) if args.json else
          f"lab {result['prefix']} is up, gateway variant {result['variant']} ({result['seconds']:.1f}s)")
    return 0


def cmd_lab_down(args: argparse.Namespace) -> int:
    from .lab import lifecycle
    result = lifecycle.down(_inventory(args), quiet=args.quiet)
    print(json.dumps(result) if args.json else f"lab {result['prefix']} is down ({result['seconds']:.1f}s)")
    return 0


def cmd_lab_status(args: argparse.Namespace) -> int:
    from .lab import lifecycle
    st = lifecycle.status(_inventory(args))
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print(f"lab {st['prefix']}: {'up, gateway variant ' + st['variant'] if st['up'] else 'NOT fully up'}"
              f"  (state {st['state_dir']})")
        for name, h in st["hosts"].items():
            flags = "  ".join(f"{k}={'up' if v else 'DOWN'}" for k, v in h.items() if isinstance(v, bool))
            print(f"  {name:<8} {h['namespace']:<14} {h['management_address'] or '-':<14} {flags}")
    return 0 if st["up"] else 1


def _provision_variant(args: argparse.Namespace, name: str) -> None:
    """Embedded lab: bring it up as gateway variant `name` unless it already is."""
    from . import variants
    from .lab import lifecycle
    inv = _inventory(args)
    spec = lifecycle.spec_of(inv)
    if variants.provisioned(spec.state_dir).name != variants.get(name).name or not lifecycle.status(inv)["up"]:
        print(f"aovpn-lab: provisioning gateway variant {name}", file=sys.stderr)
        lifecycle.up(inv, quiet=True, variant=name)


def cmd_run(args: argparse.Namespace) -> int:
    from .report import run as report_run
    if args.variant:
        _provision_variant(args, args.variant)
    return report_run.run_suite(inventory=args.inventory, prefix=args.prefix, select=args.k,
                                reports_dir=Path(args.reports), extra=args.pytest_args, vault=_vault(args),
                                reruns=args.rerun_failures, workers=args.workers, client=args.client,
                                site=args.site)


def run_compare_side(args: argparse.Namespace, kind: str, value: str) -> Path:
    """A side of `compare` to run now: a gateway variant of the embedded lab, or an inventory."""
    from .report import run as report_run
    if kind == "variant":
        _provision_variant(args, value)
        inventory = args.inventory
    else:
        inventory = value
    reports = Path(args.reports)
    import contextlib
    with contextlib.redirect_stdout(sys.stderr):  # stdout is the comparison's (--json)
        code = report_run.run_suite(inventory=str(inventory), prefix=args.prefix if kind == "variant" else None,
                                    select=args.k, reports_dir=reports, vault=_vault(args))
    if code == 2:
        raise AovpnError(f"the run for {kind} '{value}' did not finish", hint=f"see {reports / 'latest'}")
    return (reports / "latest").resolve()


def cmd_probe_ikev2(args: argparse.Namespace) -> int:
    from .ike import probe
    result = probe.probe_from_cli(args)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.summary())
    return 0 if result.connected else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aovpn-lab",
        description="Lab automation and conformance tests for Always On VPN style IKEv2 and SSTP remote access.",
        epilog="Start with `make conformance` (lab up, suite, report, lab down). Reports land in reports/latest/.")
    p.add_argument("--version", action="version", version=f"aovpn-lab {__version__}")
    p.add_argument("--inventory", "-i", default=str(DEFAULT_INVENTORY),
                   help="Ansible inventory folder or YAML file (default: %(default)s)")
    p.add_argument("--prefix", help="lab prefix for namespace/link names (default: lab_prefix of the inventory)")
    from .inventory.vault import add_options as add_vault_options
    add_vault_options(p.add_argument)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    lab = sub.add_parser("lab", help="bring the embedded lab up or down, or show its status",
                         description="The embedded lab: network namespaces with sshd, strongSwan gateways and "
                                     "clients, an nftables edge; provisioned by Ansible over SSH.")
    labsub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    for name, func, text in (
        ("up", cmd_lab_up, "create namespaces, links, sshd, certificates, charons and the edge ruleset"),
        ("down", cmd_lab_down, "remove every namespace, link, bridge, process and state file of the lab "
                               "(safe to run twice, and after a crash)"),
        ("status", cmd_lab_status, "which lab hosts and services are up (exit 1 when any is down)"),
    ):
        sp = labsub.add_parser(name, help=text, description=text)
        if name == "up":
            sp.add_argument("--variant", help="gateway variant from profiles/variants.yml (default: default, "
                                              "which follows every recommendation)")
        sp.add_argument("--json", action="store_true", help="print JSON")
        sp.add_argument("--quiet", "-q", action="store_true", help="print only failures of Ansible tasks")
        sp.set_defaults(func=func)

    run = sub.add_parser("run", help="run the conformance suite and write an HTML report",
                         description="Run tests/conformance against the target the inventory describes and "
                                     "write reports/<run-id>/{report.html,junit.xml,results.json}; "
                                     "reports/latest points at the newest run. Exit 0 when every expectation "
                                     "holds.")
    run.add_argument("-k", help="only cells whose test id matches this pytest -k expression")
    run.add_argument("--variant", help="embedded lab only: provision this gateway variant first "
                                       "(profiles/variants.yml), to see what a broken deployment's report looks like")
    run.add_argument("--reports", "--history", dest="reports", metavar="DIR", default=str(paths.REPORTS),
                     help="folder of runs: the run goes to DIR/<run-id>/ and the report shows what changed since "
                          "the earlier runs there (DIR/history.html is their index) (default: %(default)s)")
    run.add_argument("--rerun-failures", type=int, default=0, metavar="N",
                     help="run a failing cell up to N more times (pytest-rerunfailures); a cell that fails and "
                          "then passes is reported as flaky, never as a plain pass (default: 0)")
    run.add_argument("--workers", default="auto", metavar="N",
                     help="run cells on N clients at once (pytest-xdist), each under conditions scoped to its own "
                          "traffic; 'auto': one per host of ikev2_clients (at most 4) where the edge can scope "
                          "conditions, else 1 (default: %(default)s)")
    run.add_argument("--client", metavar="HOST", help="the host of ikev2_clients to test from (default: the first); "
                     "conditions then apply to its traffic alone, so another run can use another client meanwhile")
    run.add_argument("--site", metavar="NAME", help="the site this run tests, kept in results.json for "
                     "`aovpn-lab report merge` (playbooks/run-sites.yml gives each tester its site's name)")
    run.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    run.set_defaults(func=cmd_run)

    probe = sub.add_parser("probe", help="one-shot connection attempts from this host or namespace")
    probesub = probe.add_subparsers(dest="probe_command", metavar="PROTOCOL", required=True)
    ik = probesub.add_parser(
        "ikev2", help="one IKEv2 connection attempt with a private charon",
        description="Start a private charon in this network namespace, connect once to the gateway, and say "
                    "whether the IKE SA and child SA came up and, if not, why (a differential test tells a "
                    "blocked port from dropped IP fragments).")
    ik.add_argument("--gateway", required=True, help="gateway address (IPv4)")
    ik.add_argument("--remote-id", required=True, help="identity the gateway must prove (its certificate name)")
    ik.add_argument("--ca", required=True, help="CA certificate (PEM) that issued the gateway's certificate")
    ik.add_argument("--cert", required=True, help="this client's certificate (PEM)")
    ik.add_argument("--key", required=True, help="this client's private key (PEM; never printed)")
    ik.add_argument("--chain", help="intermediate CA certificates (PEM) to send with --cert")
    ik.add_argument("--auth", choices=["pubkey", "eap-tls"], default="pubkey",
                    help="pubkey: machine certificate (device tunnel, default); eap-tls: user certificate, EAP "
                         "relayed by the gateway to RADIUS (user tunnel)")
    ik.add_argument("--aaa-id", help="eap-tls: identity of the RADIUS server's certificate")
    ik.add_argument("--local-id", help="this client's identity (default: the certificate's subject)")
    ik.add_argument("--profile", help="client profile from profiles/clients.yml (default: the file's default)")
    ik.add_argument("--remote-ts", default="0.0.0.0/0", help="traffic selector to request (default: %(default)s)")
    ik.add_argument("--ping", metavar="ADDR", help="after connecting, ping ADDR through the tunnel")
    ik.add_argument("--timeout", type=float, default=10.0, help="seconds for the whole attempt (default: %(default)s)")
    ik.add_argument("--json", action="store_true", help="print JSON")
    ik.set_defaults(func=cmd_probe_ikev2)
    from .sstp import command as sstp_command
    st = probesub.add_parser("sstp", help="one SSTP connection attempt (TLS, MS-CHAPv2, crypto binding, ping)",
                             description=sstp_command.DESCRIPTION)
    sstp_command.add_arguments(st)
    st.set_defaults(func=sstp_command.run)

    from .capture import command as diagnose_command
    from .certs import command as certs_command
    from .pathscan import command as scan_command
    certs_command.register(sub)
    diagnose_command.register(sub)
    scan_command.register(sub)
    from .balancer.vendors import command as lb_command
    lb_command.register(sub)
    from .report import command as report_command
    from .report import certify_command, compare_command
    report_command.register(sub)
    compare_command.register(sub, run_now=run_compare_side)
    certify_command.register(sub)
    from .audit import command as audit_command
    audit_command.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if "--" in argv:  # everything after -- goes to pytest untouched
        i = argv.index("--")
        argv, passthrough = argv[:i], argv[i + 1:]
    else:
        passthrough = []
    args = parser.parse_args(argv)
    if passthrough:
        args.pytest_args = list(getattr(args, "pytest_args", []) or []) + passthrough
    try:
        return args.func(args)
    except AovpnError as exc:
        print(f"aovpn-lab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("aovpn-lab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
