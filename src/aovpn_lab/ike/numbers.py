"""IKEv2 numbers on the wire (RFC 7296): ports, exchange, notify and payload types.

The crafted requests (:mod:`.sa_init`), the decoding of IKE bytes (:mod:`.wire`, :mod:`.answer`)
and the UDP transport (:mod:`.transport`) share them.
"""

from __future__ import annotations

IKE_PORT = 500
NATT_PORT = 4500
NON_ESP_MARKER = b"\x00\x00\x00\x00"

IKE_SA_INIT = 34

N_NO_PROPOSAL_CHOSEN = 14
N_INVALID_KE_PAYLOAD = 17
N_COOKIE = 16390
N_NAT_DETECTION_SOURCE_IP = 16388
N_NAT_DETECTION_DESTINATION_IP = 16389
N_IKEV2_FRAGMENTATION_SUPPORTED = 16430

# payload type numbers (RFC 7296 3.2)
PT_NONE, PT_PROPOSAL, PT_TRANSFORM = 0, 2, 3
PT_SA, PT_KE, PT_NONCE, PT_NOTIFY, PT_VID = 33, 34, 40, 41, 43
PT_SK, PT_SKF = 46, 53  # Encrypted, and RFC 7383 Encrypted Fragment

FLAG_INITIATOR = 0x08
FLAG_RESPONSE = 0x20

HEADER_LEN = 28
MAX_MESSAGE = 65000  # stays below the UDP datagram limit, with or without marker

PAD_VENDOR_ID_PREFIX = b"aovpn-lab pad "
