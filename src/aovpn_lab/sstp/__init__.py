"""SSTP ([MS-SSTP]): the client core, the probe built on it, and the lab gateway.

Sans-IO core (no sockets):

- ``messages``: SSTP packets as scapy field lists, strict parser, stream reader
- ``mschapv2`` / ``mppe``: RFC 2759 and RFC 3079 computations
- ``binding``: HLAK, CMK, Compound MAC, CALL_CONNECTED
- ``ppp``: PPP inside SSTP (LCP, MS-CHAPv2/PAP, IPCP) as state machines
- ``handshake``: the ``SSTP_DUPLEX_POST`` request and the HTTP answer parser
- ``client``: the SSTP client state machine (HTTP -> call setup -> PPP -> binding -> IP)
- ``errors``: ``SstpProtocolError``

With sockets:

- ``transport``: TCP + TLS with chain/name verification and certificate evidence
- ``probe``: ``probe_sstp()`` -> ``SstpProbeResult`` (one attempt, one cause, timings)
- ``command``: ``aovpn-lab probe sstp`` (``add_arguments``/``run`` for cli.py)
- ``refserver``: a reference SSTP server that verifies the crypto binding (tests)
- ``softether``: the lab gateway (patched Debian softether-vpnserver in a netns)
"""
