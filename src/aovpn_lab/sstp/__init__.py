"""SSTP client core ([MS-SSTP]), pure Python and sans-IO; no sockets here.

- ``messages``: SSTP packets as scapy field lists, strict parser, stream reader
- ``mschapv2`` / ``mppe``: RFC 2759 and RFC 3079 computations
- ``binding``: HLAK, CMK, Compound MAC, CALL_CONNECTED
- ``ppp``: PPP inside SSTP (LCP, MS-CHAPv2/PAP, IPCP) as state machines
- ``errors``: ``SstpProtocolError``
"""
