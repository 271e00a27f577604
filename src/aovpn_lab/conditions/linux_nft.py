"""A Linux router/firewall (the lab's edge, or any Linux box) driven with netmiko.

Conditions are nftables rules in the table the edge role loaded (inet aovpn_edge):
fragments are dropped in a prerouting chain at priority -450, before conntrack
reassembles them at -400 (a forward-chain rule would never see a fragment); port and
protocol blocks sit in the forward chain with named counters. The path MTU is a locked
route MTU on the edge's routes: the forwarding path honours it (fragmenting, or sending
ICMP frag-needed for DF packets) while both veth ends keep MTU 1500, since a veth drops
frames larger than the receiving end's MTU without a trace.

Scoped to one client (ClientScope), the same rules go into that client's own chains,
which the base chains reach through maps keyed by the client's addresses; its counters
carry its name; 'nat' translates it to its own address (so the gateway, its firewall and
a capture there still tell it apart); its path MTU is a locked route on its own link and,
towards the Internet side, in its own routing table (an `ip rule` from its network). Its
connection tracking entries alone are flushed. Nothing another client has is touched.
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any

from ..errors import AovpnError, TargetError
from ..ssh import target_of
from ..tool import NFT, error_line
from .base import ConditionDriver, interfaces_of
from .model import DROP_COUNTERS, Condition
from .rules import EffectiveRules, FragmentPolicy, PortRule

TABLE = "inet aovpn_edge"
NAT_CHAIN = "ip aovpn_edge_nat postrouting"
RC_MARK = "AOVPN_RC="

MATCHES = {
    "drop-ip-fragments": ("raw_prerouting", "ip frag-off & 0x3fff != 0"),
    "block-udp-500": ("forward_filter", "udp dport 500"),
    "block-udp-4500": ("forward_filter", "udp dport 4500"),
    "block-esp": ("forward_filter", "meta l4proto esp"),
    "block-tcp-443": ("forward_filter", "tcp dport 443"),
}



COUNTERS = tuple(DROP_COUNTERS.values())
RULE_PREF = 1000  # `ip rule` priority of a client's routing table: pref RULE_PREF + table


def nft(args: str) -> str:
    """The shell command that runs `nft ARGS` on the edge in its turn (tool.NFT): several
    sessions, one per client under --workers, change and read the same table."""
    return " ".join([*NFT, args])


class LinuxNftDriver(ConditionDriver):
    supports = frozenset(MATCHES) | {"open", "mtu", "nat"}
    scopes_clients = True

    # -- session ---------------------------------------------------------------
    def open(self) -> None:
        from netmiko import ConnectHandler
        from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

        t = target_of(self.inventory, self.host)
        params: dict[str, Any] = dict(device_type="linux", host=t.host, port=t.port, username=t.username,
                                      conn_timeout=5, auth_timeout=5, banner_timeout=5, fast_cli=True)
        if t.key_file:
            params.update(use_keys=True, key_file=t.key_file, allow_agent=False)
        if t.password:
            params["password"] = t.password
        if t.known_hosts:
            # Check the host key against the lab's known_hosts instead of trusting whatever answers.
            params.update(ssh_strict=True, system_host_keys=False, alt_host_keys=True, alt_key_file=t.known_hosts)
        try:
            self.conn = ConnectHandler(**params)
        except (NetmikoTimeoutException, NetmikoAuthenticationException, OSError) as exc:
            raise TargetError(f"edge {self.host.name} ({t.host}:{t.port}) is unreachable over SSH: "
                              f"{str(exc).splitlines()[0]}",
                              hint="is the lab up? `aovpn-lab lab status`") from None
        if self.scope is not None:
            self.send(self.scope_setup())

    def send(self, commands: list[str]) -> str:
        """Run shell commands on the edge in one round trip; their output, or a TargetError.

        Judged by the shell's exit status (the first failing command's), never by the text.
        """
        if self.conn is None:
            raise AovpnError(f"edge {self.host.name}: no session", hint="use the driver as a context manager")
        # One round trip for the whole change: each prompt exchange costs ~0.1 s.
        line = " && ".join(f"{{ {c}; }}" for c in commands)
        # The echo of a long line comes back wrapped by the terminal, so don't match it;
        # the marker's last occurrence is the shell's answer, not the echo ('$?' unexpanded).
        out = self.conn.send_command(f"{line}; echo {RC_MARK}$?", read_timeout=15, cmd_verify=False)
        rc = out.rsplit(RC_MARK, 1)[-1].split()[0] if RC_MARK in out else "?"
        body = out.rsplit(RC_MARK, 1)[0] if RC_MARK in out else out
        if rc != "0":
            raise TargetError(f"edge {self.host.name}: `{line}` exited {rc}: "
                              f"{error_line(body, '', rc)}")
        return body

    # -- conditions ------------------------------------------------------------
    # -- scope -----------------------------------------------------------------
    def _chains(self) -> tuple[str, str, str]:
        """(raw, forward, nat) chains the conditions of this driver's scope go into."""
        tag = self.scope.tag if self.scope else "box"
        return f"{TABLE} raw_{tag}", f"{TABLE} forward_{tag}", f"ip aovpn_edge_nat nat_{tag}"

    def _counter(self, name: str) -> str:
        return self.scope.counter(name) if self.scope else name

    def scope_setup(self) -> list[str]:
        """Give the scope's client its chains, counters, map entries, NAT address and routing
        table (idempotent: every `add` of nftables leaves an existing object as it is)."""
        s = self.scope
        assert s is not None
        raw, fwd, nat = self._chains()
        batch = [f"add chain {raw}", f"add chain {fwd}", f"add chain {nat}"]
        batch += [f"add counter {TABLE} {s.counter(c)}" for c in COUNTERS]
        batch += [f"add element {TABLE} raw_by_source {{ {s.network} : jump raw_{s.tag} }}",
                  f"add element {TABLE} raw_by_destination {{ {', '.join(f'{a} : jump raw_{s.tag}' for a in s.sources)} }}",
                  f"add element {TABLE} forward_by_source {{ {s.network} : jump forward_{s.tag} }}",
                  f"add element ip aovpn_edge_nat nat_by_source {{ {s.network} : jump nat_{s.tag} }}"]
        cmds = [nft("'" + "; ".join(batch) + "'")]
        if s.nat_address:
            cmds.append(f"ip addr replace {s.nat_address}/32 dev lo")
        if s.route_table:
            pref = RULE_PREF + s.route_table
            # `ip rule add` is not idempotent: add it only where `ip rule show pref P` lists none
            cmds.append(f'[ -n "$(ip rule show pref {pref})" ] || ip rule add from {s.network} lookup '
                        f"{s.route_table} pref {pref}")
            cmds += self._route_commands(None, client_side=False)
        return cmds

    # -- conditions ------------------------------------------------------------
    def commands(self, condition: Condition) -> list[str]:
        raw, fwd, nat = self._chains()
        chain_of = {"raw_prerouting": raw, "forward_filter": fwd}
        batch = [f"flush chain {raw}", f"flush chain {fwd}", f"flush chain {nat}"]
        for part in condition.parts:
            if part.kind in MATCHES:
                chain, match = MATCHES[part.kind]
                batch.append(f"add rule {chain_of[chain]} {match} counter name {self._counter(DROP_COUNTERS[part.kind])} drop")
        if condition.has("nat"):
            # A client with its own NAT address keeps it: beyond the edge it is still told apart.
            to = f"snat to {self.scope.nat_address}" if self.scope and self.scope.nat_address else "masquerade"
            batch += [f'add rule {nat} oifname "{name}" {to}' for name in interfaces_of(self.host, "outside")]
        batch += [f"reset counter {TABLE} {self._counter(c)}" for c in COUNTERS]
        cmds = [nft("'" + "; ".join(batch) + "' >/dev/null")]
        if self.scope is None:
            cmds += self._route_commands(condition.path_mtu)
            # Existing flows would bypass the new rules (and stale NAT mappings confuse the next cell).
            cmds.append("conntrack -F 2>/dev/null")
        else:
            cmds += self._route_commands(condition.path_mtu, client_side=True)
            if self.scope.route_table:
                cmds += self._route_commands(condition.path_mtu, client_side=False)
            # This client's flows alone, both ways: a flow a gateway opened towards it (say a
            # DELETE for a half-open SA) would otherwise carry the client's next IKE_SA_INIT as
            # its reply, past a new NAT rule. conntrack -D exits 1 when no entry matched (its
            # "0 flow entries have been deleted"): nothing to flush is not a failure here.
            cmds += [f"conntrack -D -{way} {self.scope.address} >/dev/null 2>&1; [ $? -le 1 ]" for way in "sd"]
        return cmds

    def _route_commands(self, mtu: int | None, client_side: bool | None = None) -> list[str]:
        """Connected routes with the path MTU locked (None: unlocked). Box-wide: every route on
        the condition interfaces. Scoped: client_side=True its link's route (towards it),
        False the outside routes in its routing table (from it)."""
        lab = self.inventory.lab
        if client_side is None:
            ifaces, table = interfaces_of(self.host), ""
        elif client_side:
            ifaces, table = [self.scope.interface], ""
        else:
            ifaces, table = interfaces_of(self.host, "outside"), f" table {self.scope.route_table}"
        cmds = []
        for link in (lab.links if lab else ()):
            for end in link.ends:
                if end.host != self.host.name or end.interface not in ifaces:
                    continue
                net = ipaddress.ip_interface(str(end.address)).network
                lock = f" mtu lock {mtu}" if mtu else ""
                cmds.append(f"ip route replace {net} dev {end.interface} proto kernel scope link "
                            f"src {end.address.ip}{table}{lock}")
        return cmds

    def counters(self) -> dict[str, int]:
        out = self.send([nft(f"-j list counters table {TABLE}")])
        try:
            data = json.loads(out[out.index("{"):])
        except ValueError:
            raise TargetError(f"edge {self.host.name}: `nft -j list counters table {TABLE}` printed no JSON: "
                              f"{error_line(out, '', 0)}") from None
        result = {}
        for item in data.get("nftables", []):
            c = item.get("counter")
            if c:
                result[c["name"]] = int(c.get("packets", 0))
        # this scope's counters, under the names the rest of the suite knows
        return {name: result.get(self._counter(name), 0) for name in COUNTERS}

    def effective_rules(self) -> EffectiveRules:
        """What the edge's nftables table enforces now (`nft -j list ruleset`, parsed as JSON)."""
        out = self.send([nft("-j list ruleset")])
        try:
            data = json.loads(out[out.index("{"):])
        except ValueError:
            raise TargetError(f"edge {self.host.name}: `nft -j list ruleset` printed no JSON: "
                              f"{error_line(out, '', 0)}") from None
        return ruleset_rules(data)


def ruleset_rules(data: dict) -> EffectiveRules:
    """Drop/accept rules and fragment drops of the aovpn_edge table in `nft -j list ruleset` JSON.

    >>> rule = {"rule": {"family": "inet", "table": "aovpn_edge", "chain": "forward_filter", "expr": [
    ...     {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 500}},
    ...     {"drop": None}]}}
    >>> [str(r) for r in ruleset_rules({"nftables": [rule]}).rules]
    ['deny udp 500']
    """
    rules, frags = [], []
    for item in data.get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("table") != "aovpn_edge":
            continue
        exprs = rule.get("expr", [])
        verdict = next((k for e in exprs for k in e if k in ("drop", "accept", "reject")), None)
        if verdict is None:
            continue
        action = "allow" if verdict == "accept" else "deny"
        proto, port, fragment = "any", None, False
        for e in exprs:
            m = e.get("match")
            if not m:
                continue
            left, right = m.get("left", {}), m.get("right")
            if isinstance(left, dict) and "payload" in left and left["payload"].get("field") == "dport":
                proto, port = left["payload"].get("protocol", "any"), right if isinstance(right, int) else None
            elif isinstance(left, dict) and left.get("meta", {}).get("key") == "l4proto" and right in ("esp", 50):
                proto = "esp"
            elif isinstance(left, dict) and "&" in left and any(
                    isinstance(x, dict) and x.get("payload", {}).get("field") == "frag-off" for x in left["&"]):
                fragment = True
        if fragment:
            frags.append(FragmentPolicy(action == "deny", rule.get("chain", "")))
        elif proto in ("udp", "tcp", "esp"):
            rules.append(PortRule(action, proto, port, rule.get("chain", "")))
    return EffectiveRules(tuple(rules), tuple(frags))
