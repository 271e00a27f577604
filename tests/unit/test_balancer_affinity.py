"""aovpn_lab.balancer.affinity on synthetic captures of a client side and two backends.

The captures are written with scapy's PcapWriter: real IKE_SA_INIT requests
(build_ike_sa_init) and IKE_AUTH messages built from scapy's IKEv2 layers, over
Ethernet/IPv4/UDP, as tcpdump would have written them on the probe's lan0 and on each
gateway's balancer-facing interface.
"""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
from scapy.contrib.ikev2 import IKEv2, IKEv2_Encrypted, IKEv2_Notify
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import PcapWriter

from aovpn_lab.balancer.affinity import analyse, summarise
from aovpn_lab.capture.errors import CaptureInputError
from aovpn_lab.errors import AovpnError
from aovpn_lab.ike.craft import DEFAULT_REACH_PROPOSALS, build_ike_sa_init
from aovpn_lab.ike.numbers import NON_ESP_MARKER

VIP = "203.0.113.100"
GW = {"gw1": "198.18.1.10", "gw2": "198.18.1.18"}
BALANCER = "198.18.1.9"


class Lab:
    """The captures of one cell: the client side and one per backend."""

    def __init__(self):
        self.frames: dict[str, list] = {"client": [], "gw1": [], "gw2": []}
        self.clock = itertools.count(1)
        self.ports = itertools.count(40000)

    def _put(self, where: str, src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        pkt = Ether() / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / Raw(data)
        pkt.time = 1_700_000_000 + next(self.clock) * 0.01
        self.frames[where].append(pkt)

    def dial(self, client: str, spi: bytes, init_to: str | None, auth_to: str | None = "same", *,
             seen_as: str | None = None, answered: bool = True, retransmits: int = 0) -> None:
        """One attempt: IKE_SA_INIT on 500 to ``init_to``, IKE_AUTH on 4500 to ``auth_to``.

        ``seen_as``: the source address the backends see (the balancer's, when it translates),
        with a new source port per flow. A backend answers IKE_AUTH only for an SA it made.
        """
        auth_to = init_to if auth_to == "same" else auth_to
        spi_r = bytes(reversed(spi))
        init = build_ike_sa_init(DEFAULT_REACH_PROPOSALS, "modp2048", spi=spi)
        init_resp = bytes(IKEv2(init_SPI=spi, resp_SPI=spi_r, exch_type=34, flags="Response")
                          / IKEv2_Notify(type=16430))
        auth = NON_ESP_MARKER + bytes(IKEv2(init_SPI=spi, resp_SPI=spi_r, exch_type=35, flags="Initiator", id=1)
                                      / IKEv2_Encrypted(load=os.urandom(120)))
        auth_resp = NON_ESP_MARKER + bytes(IKEv2(init_SPI=spi, resp_SPI=spi_r, exch_type=35, flags="Response", id=1)
                                           / IKEv2_Encrypted(load=os.urandom(90)))
        src500 = (seen_as, next(self.ports)) if seen_as else (client, 500)
        src4500 = (seen_as, next(self.ports)) if seen_as else (client, 4500)
        for _ in range(1 + retransmits):
            self._put("client", (client, 500), (VIP, 500), init)
            if init_to:
                self._put(init_to, src500, (GW[init_to], 500), init)
        if not init_to:
            return
        self._put(init_to, (GW[init_to], 500), src500, init_resp)
        self._put("client", (VIP, 500), (client, 500), init_resp)
        self._put("client", (client, 4500), (VIP, 4500), auth)
        if auth_to:
            self._put(auth_to, src4500, (GW[auth_to], 4500), auth)
            if answered and auth_to == init_to:
                self._put(auth_to, (GW[auth_to], 4500), src4500, auth_resp)
                self._put("client", (VIP, 4500), (client, 4500), auth_resp)

    def health_check(self, backend: str) -> None:
        """The balancer's own stateless IKE_SA_INIT, seen only on the backend."""
        self._put(backend, (BALANCER, 500), (GW[backend], 500),
                  build_ike_sa_init(DEFAULT_REACH_PROPOSALS, "modp768", spi=os.urandom(8)))

    def write(self, d: Path) -> tuple[Path, dict[str, Path]]:
        paths = {}
        for where, pkts in self.frames.items():
            paths[where] = d / f"{where}.pcap"
            with PcapWriter(str(paths[where]), linktype=1, sync=True) as w:
                for p in pkts:
                    w.write(p)
        client = paths.pop("client")
        return client, paths


def spi(n: int) -> bytes:
    return bytes([0xA0, 0, 0, 0, 0, 0, n // 256, n % 256])


def client(n: int) -> str:
    return f"198.18.16.{n}"


def test_affinity_mode_keeps_both_ports_of_each_client_on_one_backend(tmp_path):
    lab = Lab()
    for n in range(1, 5):
        lab.dial(client(n), spi(n), "gw1" if n % 2 else "gw2")
    c, b = lab.write(tmp_path)
    a = analyse(c, b)
    assert list(a.clients) == [client(n) for n in range(1, 5)]
    rec = a.clients[client(1)]
    assert (rec.spis, rec.last_spi) == ([spi(1).hex()], spi(1).hex())
    assert (rec.udp500, rec.udp4500, rec.backend, rec.split) == (["gw1"], ["gw1"], "gw1", False)
    assert rec.auth_answered is True and rec.translated is False
    assert rec.sources == {"gw1": [(client(1), 500), (client(1), 4500)]}
    s = summarise(a, connected={client(n) for n in range(1, 5)}, established={"gw1": ["CN=c1", "CN=c3"], "gw2": ["CN=c2", "CN=c4"]})
    assert (s.clients, s.split, s.split_ratio, s.per_backend) == (4, [], 0.0, {"gw1": 2, "gw2": 2})
    assert (s.connected, s.failed, s.split_failed, s.connected_unseen) == (4, [], 0, [])
    assert s.established_per_backend == {"gw1": 2, "gw2": 2}
    assert s.snat["gw1"].sources == [client(1), client(3)] and s.snat["gw1"].max_clients_per_source == 1
    assert s.translated_clients == 0 and s.auth_unanswered == [] and s.unassigned == []


def test_per_flow_split_sends_ike_auth_to_a_backend_that_never_saw_the_sa_init(tmp_path):
    lab = Lab()
    lab.dial(client(1), spi(1), "gw1", "gw2")
    lab.dial(client(2), spi(2), "gw2", "gw2")
    c, b = lab.write(tmp_path)
    a = analyse(c, b)
    rec = a.clients[client(1)]
    assert (rec.udp500, rec.udp4500, rec.split, rec.backend) == (["gw1"], ["gw2"], True, "gw2")
    assert rec.last.sa_init == ["gw1"] and rec.last.later == ["gw2"]
    assert rec.auth_answered is False and rec.last.auth == {"gw2": False}
    s = summarise(a, connected={client(2)})
    assert (s.split, s.split_ratio, s.split_failed, s.failed) == ([client(1)], 0.5, 1, [client(1)])
    assert s.auth_unanswered == [client(1)]


def test_snat_proxy_shows_every_client_from_the_balancer_address(tmp_path):
    lab = Lab()
    for n in range(1, 13):
        lab.dial(client(n), spi(n), "gw1" if n <= 7 else "gw2", seen_as=BALANCER)
    c, b = lab.write(tmp_path)
    a = analyse(c, b)
    rec = a.clients[client(3)]
    assert rec.translated and rec.split is False
    assert [addr for addr, _ in rec.sources["gw1"]] == [BALANCER, BALANCER]
    assert len({port for _, port in rec.sources["gw1"]}) == 2  # a new source port per flow
    s = summarise(a)
    assert s.per_backend == {"gw1": 7, "gw2": 5} and s.translated_clients == 12
    assert (s.snat["gw1"].sources, s.snat["gw1"].max_clients_per_source, s.snat["gw1"].translated_clients) == \
        ([BALANCER], 7, 7)
    assert s.snat["gw2"].max_clients_per_source == 5
    assert s.spread().even and s.spread().counts == {"gw1": 7, "gw2": 5}
    assert s.connected is None and s.failed is None and s.established_per_backend is None


def test_a_retry_with_a_new_spi_keeps_both_attempts_and_counts_the_last(tmp_path):
    lab = Lab()
    lab.dial(client(1), spi(1), None)                    # the balancer dropped it
    lab.dial(client(1), spi(2), "gw1", auth_to=None)     # answered, IKE_AUTH lost before the backends
    lab.dial(client(1), spi(3), "gw2")
    c, b = lab.write(tmp_path)
    rec = analyse(c, b).clients[client(1)]
    assert rec.spis == [spi(1).hex(), spi(2).hex(), spi(3).hex()] and rec.last_spi == spi(3).hex()
    assert rec.attempts[spi(1).hex()].backend is None and rec.attempts[spi(2).hex()].auth_answered is None
    assert (rec.udp500, rec.udp4500, rec.backend, rec.split, rec.auth_answered) == \
        (["gw1", "gw2"], ["gw2"], "gw2", False, True)


def test_retransmissions_are_counted_once(tmp_path):
    lab = Lab()
    lab.dial(client(1), spi(1), "gw1", retransmits=2)
    c, b = lab.write(tmp_path)
    rec = analyse(c, b).clients[client(1)]
    assert rec.spis == [spi(1).hex()] and rec.udp500 == ["gw1"]
    assert rec.sources["gw1"] == [(client(1), 500), (client(1), 4500)]


def test_health_checks_on_a_backend_are_unmatched_spis_not_clients(tmp_path):
    lab = Lab()
    lab.health_check("gw1")
    lab.health_check("gw1")
    lab.dial(client(1), spi(1), "gw2")
    c, b = lab.write(tmp_path)
    a = analyse(c, b)
    assert list(a.clients) == [client(1)] and a.unmatched == {"gw1": 2, "gw2": 0}
    s = summarise(a)
    assert s.snat["gw1"].sources == [] and s.per_backend == {"gw1": 0, "gw2": 1}


def test_a_client_no_backend_saw_is_unassigned_and_an_sa_missing_from_the_capture_is_named(tmp_path):
    lab = Lab()
    lab.dial(client(1), spi(1), None)
    c, b = lab.write(tmp_path)
    s = summarise(analyse(c, b), connected={client(9)})
    assert s.unassigned == [client(1)] and s.per_backend == {"gw1": 0, "gw2": 0}
    assert s.spread().n == 0
    assert s.connected == 0 and s.connected_unseen == [client(9)]


def test_vip_filter_keeps_only_requests_to_the_vip(tmp_path):
    lab = Lab()
    lab.dial(client(1), spi(1), "gw1")
    lab._put("client", (client(2), 500), ("192.0.2.77", 500), build_ike_sa_init(DEFAULT_REACH_PROPOSALS, 14))
    c, b = lab.write(tmp_path)
    assert list(analyse(c, b).clients) == [client(1), client(2)]
    assert list(analyse(c, b, vip=VIP).clients) == [client(1)]


def test_the_analysis_and_the_summary_are_json(tmp_path):
    lab = Lab()
    lab.dial(client(1), spi(1), "gw1", "gw2", seen_as=BALANCER)
    c, b = lab.write(tmp_path)
    a = analyse(c, b)
    j = json.loads(json.dumps({"analysis": a.to_json(), "summary": summarise(a, connected=[]).to_json()}))
    assert j["analysis"]["clients"][0]["split"] is True
    assert j["summary"]["snat"]["gw1"]["sources"] == [BALANCER]
    assert j["summary"]["split_failed"] == 1


def test_no_backend_capture_is_an_error_that_says_what_to_pass(tmp_path):
    lab = Lab()
    c, _ = lab.write(tmp_path)
    with pytest.raises(AovpnError, match="no backend capture") as exc:
        analyse(c, {})
    assert "gw1.pcap" in exc.value.hint


def test_a_missing_backend_capture_is_named(tmp_path):
    lab = Lab()
    c, b = lab.write(tmp_path)
    with pytest.raises(CaptureInputError, match="gw3.pcap"):
        analyse(c, {**b, "gw3": tmp_path / "gw3.pcap"})


def test_established_sas_for_an_unknown_backend_are_refused(tmp_path):
    lab = Lab()
    c, b = lab.write(tmp_path)
    with pytest.raises(AovpnError, match="gw3"):
        summarise(analyse(c, b), established={"gw3": ["CN=x"]})
