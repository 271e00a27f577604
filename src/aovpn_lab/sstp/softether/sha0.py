"""SHA-0, which SoftEther stores its admin password with (hashlib has none)."""
from __future__ import annotations

import struct


def sha0(data: bytes) -> bytes:
    """SHA-0 (FIPS 180, 1993): how SoftEther stores the admin password (``HashedPassword``).

    SHA-1 without the one-bit rotation in the message schedule; hashlib has no SHA-0.
    Checked against this build: "" -> +WzqGYrR3VYXrAhKPZLGEHcIwO8=.
    """
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    length = len(data) * 8
    data += b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack(">Q", length)

    def rol(x: int, n: int) -> int:
        return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF

    for offset in range(0, len(data), 64):
        w = list(struct.unpack(">16I", data[offset:offset + 64]))
        for i in range(16, 80):
            w.append(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16])  # SHA-1 would rotate here
        a, b, c, d, e = state
        for i in range(80):
            if i < 20:
                f, k = (b & c) | (~b & d), 0x5A827999
            elif i < 40:
                f, k = b ^ c ^ d, 0x6ED9EBA1
            elif i < 60:
                f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
            else:
                f, k = b ^ c ^ d, 0xCA62C1D6
            a, b, c, d, e = (rol(a, 5) + f + e + k + w[i]) & 0xFFFFFFFF, a, rol(b, 30), c, d
        state = [(x + y) & 0xFFFFFFFF for x, y in zip(state, (a, b, c, d, e))]
    return struct.pack(">5I", *state)
