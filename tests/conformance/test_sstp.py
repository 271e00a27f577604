"""SSTP conformance: the protocol that keeps users connected when IKEv2 cannot. Under
every network condition it must connect (TLS, MS-CHAPv2, crypto binding, IPCP, a ping
through the tunnel) unless TCP 443 itself is blocked - and then say so."""
from __future__ import annotations

import pytest

from aovpn_lab import matrix
from aovpn_lab.conditions.model import OPEN, Condition
from aovpn_lab.corroboration import corroborate
from aovpn_lab.expectations import expect
from aovpn_lab.ike.craft_netns import tcp_open
from aovpn_lab.pytest_plugin import target_of
from aovpn_lab.verdict import Verdict

CONDITIONS = matrix.get().sstp   # their expectations: profiles/expectations.yml, section sstp


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sstp_cell" in metafunc.fixturenames:
        target = target_of(metafunc.config)
        params = [(c, gw.name) for gw in target.sstp_gateways for c in CONDITIONS]
        metafunc.parametrize("sstp_cell", params, ids=[f"mschapv2-via-{c}-to-{g}" for c, g in params])


def test_sstp_connection_matches_expectation(sstp_cell, target, edge, cell):
    from aovpn_lab.sstp.probe import probe_sstp
    condition, gateway_name = sstp_cell
    cell.place(protocol="sstp", profile="mschapv2", condition=condition, gateway=gateway_name)
    gw = next(g for g in target.sstp_gateways if g.name == gateway_name)
    expected = expect("sstp", condition, condition=condition)
    if expected.outcome == "tcp-443-blocked":
        # A path that drops TCP 443 looks exactly like a server that is down: first show that
        # this server accepts TCP on an open path, or the cell cannot say anything.
        edge.apply(OPEN)
        if not tcp_open(target.client.netns, gw.address, gw.port, timeout=2.0):
            cell.conclude(Verdict.inconclusive(expected, "server not answering", (
                f"{gw.name} ({gw.address}:{gw.port}) does not accept TCP even on an open path: a blocked path "
                "cannot be told from a server that is down"), {"condition": condition, "control": "open path, "
                                                                 "TCP connect failed"}))
    edge.apply(Condition.parse(condition))
    result = probe_sstp(gw.address, gw.port, user=gw.user, password=gw.password,
                        ca_file=str(gw.ca_file) if gw.ca_file else None, sni=gw.identity, ping=gw.ping_target,
                        timeout=8.0, netns=target.client.netns, syn_timeout=target.give_up.ceiling)
    data = result.to_json()
    observed = "connected" if result.connected else result.cause
    evidence = {
        "condition": condition,
        "elapsed_ms": data.get("elapsed_ms"),
        "TLS": f"{data.get('tls_version')} {data.get('tls_cipher')}",
        "server certificate SHA-256": data.get("cert_sha256"),
        "authentication": data.get("auth"),
        "IPCP address": data.get("ip"),
        "ping through tunnel": data.get("ping_ok"),
        "phases (ms)": data.get("phases"),
        "crypto binding": (f"{data.get('hash_protocol')} CALL_CONNECTED sent; this server (SoftEther) does not "
                           "verify it - see the crypto-binding cells" if data.get("crypto_binding_sent")
                           else "not sent"),
        "edge drop counters": edge.counters(),
        "configured: give up an unanswered TCP SYN after (s)": f"{target.give_up.ceiling:g} (the give-up rule's "
                                                                 "ceiling: no round trip measured yet)",
    }
    if not result.connected:
        evidence["detail"] = data.get("detail")
    cell.conclude(corroborate(Verdict.compare(expected, observed, evidence, detail=data.get("detail") or ""),
                              Condition.parse(condition), evidence["edge drop counters"]))
    if observed == "connected":
        assert result.ping_ok and result.ip


# -- the crypto binding, verified by a server that checks it ------------------------------
# SoftEther accepts any CALL_CONNECTED, and RRAS cannot run here. The lab's stand-in for
# RRAS's check is the reference SSTP server (aovpn_lab.sstp.refserver), whose key
# derivation (aovpn_lab.sstp.serverbinding) shares no code with the client's and is
# tested against the published [MS-SSTP] and RFC 3079 vectors. It runs for the cell in
# the gateway's namespace, with the gateway's certificate, on VERIFIER_PORT.
VERIFIER_PORT = 8443   # admitted by the lab gateway's firewall (playbooks/roles/strongswan)
VERIFIER_ADDRESS = "198.19.4.1"   # its end of the PPP link; answers ping inside the tunnel
# case -> the certificate whose hash the server expects (matrix.yml, sstp_binding)
BINDING_CASES = matrix.get().sstp_binding


@pytest.mark.parametrize("case", list(BINDING_CASES))
@pytest.mark.xdist_group("sstp-reference-server")  # one VERIFIER_PORT on the gateway: one cell at a time
def test_sstp_crypto_binding_is_verified_by_a_server_that_checks_it(case, target, edge, cell, tmp_path):
    from aovpn_lab.ike.craft_netns import run_in_netns
    from aovpn_lab.sstp.probe import probe_sstp
    from aovpn_lab.sstp.refserver import ReferenceServerThread, RefServerConfig
    believed = BINDING_CASES[case]
    cell.place(protocol="sstp", profile="crypto binding", gateway=case)
    expected = expect("sstp_binding", None, () if believed == "gateway" else ("server-expects-another-certificate",))
    outcome = expected.outcome
    ike = target.gateways[0] if target.gateways else None
    sgw = target.sstp_gateways[0] if target.sstp_gateways else None
    if not (ike and sgw and ike.netns and ike.gateway_cert_file):
        cell.conclude(Verdict.not_applicable("AOVPN-SSTP-BIND-001", (
            "only a server verifies the crypto binding, and this target's server is not ours to watch: the client "
            "sends it (see the SSTP cells), whether it is checked cannot be observed from here")))
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    key = ike.gateway_cert_file.with_name(f"{ike.identity}.key.pem")
    leaf = x509.load_pem_x509_certificate(ike.gateway_cert_file.read_bytes()).public_bytes(Encoding.DER)
    ca = x509.load_pem_x509_certificate(ike.ca_file.read_bytes()).public_bytes(Encoding.DER)
    config = RefServerConfig(users={sgw.user: sgw.password}, cert_der=leaf,
                             expected_cert_der=leaf if believed == "gateway" else ca,
                             server_ip=VERIFIER_ADDRESS, client_ip="198.19.4.10", dns="198.19.4.53")

    def listen():
        import socket
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ike.address, VERIFIER_PORT))
        sock.listen(4)
        return sock

    from aovpn_lab.conditions.model import OPEN
    edge.apply(OPEN)
    # The server sends the gateway's whole chain, as RRAS does: with a chain of intermediates
    # (the large certificate profile) the leaf alone would not verify at the client.
    served = ike.gateway_cert_file
    if ike.chain_file:
        served = tmp_path / "served-chain.pem"
        served.write_bytes(ike.gateway_cert_file.read_bytes() + ike.chain_file.read_bytes())
    with ReferenceServerThread(run_in_netns(ike.netns, listen), str(served), str(key),
                               config) as server:
        # The reference server presents the IKEv2 gateway's certificate, so the client trusts that
        # gateway's CA (a variant can give the IKEv2 gateway another PKI than the SSTP service's).
        result = probe_sstp(ike.address, VERIFIER_PORT, user=sgw.user, password=sgw.password,
                            ca_file=str(ike.ca_file), sni=ike.identity,
                            ping=VERIFIER_ADDRESS if outcome == "connected" else None, timeout=8.0,
                            netns=target.client.netns)
    log = server.logs[-1] if server.logs else None
    data = result.to_json()
    observed = "connected" if result.connected else result.cause
    server_says = None if log is None else log.binding_ok
    server_verdict = ("none (no CALL_CONNECTED reached it)" if server_says is None
                      else "verified" if server_says else "rejected")
    evidence = {
        "server": f"reference SSTP server (lab stand-in for RRAS's check) on {ike.address}:{VERIFIER_PORT}, "
                  f"expecting the hash of the {'gateway' if believed == 'gateway' else 'CA'} certificate",
        "client": f"{data.get('hash_protocol')} binding, CALL_CONNECTED sent: {data.get('crypto_binding_sent')}",
        "server's verdict on the binding": server_verdict,
        "server log": log.events if log else [],
        "client detail": data.get("detail") or "-",
        "ping through tunnel": data.get("ping_ok"),
    }
    if server_says is None or (observed == "connected") != server_says:
        # the client's view and the server's must agree on what happened to the binding
        cell.conclude(Verdict.inconclusive(expected, observed, (
            f"the client observed {observed}, the server's verdict on the binding: {server_verdict}"), evidence))
    cell.conclude(Verdict.compare(expected, observed, evidence, detail=data.get("detail") or ""))
    if outcome == "connected":
        assert result.ping_ok and result.ip
    else:   # named from the server's CALL_ABORT, not guessed from a hang-up
        assert "CALL_ABORT" in (data.get("detail") or ""), data.get("detail")
