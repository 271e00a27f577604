"""One capture, decoded: its IKE records by SA, its ESP records, NAT keepalives, headless fragments."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CaptureInputError
from .ikewire import EspRecord, IkeRecord, classify
from .packets import PROTO_UDP, Datagram, datagrams
from .pcapfile import CaptureInfo, read_frames

__all__ = ["CaptureSide", "load_capture"]


@dataclass
class CaptureSide:
    """One capture, decoded: IKE records, ESP records, fragment groups without a head."""

    role: str
    path: str
    info: CaptureInfo
    stats: dict[str, int]
    ike: list[IkeRecord] = field(default_factory=list)
    esp: list[EspRecord] = field(default_factory=list)
    orphans: list[Datagram] = field(default_factory=list)
    keepalives: int = 0
    by_sa: dict[bytes, list[IkeRecord]] = field(default_factory=dict)

    def without(self, spis: set[bytes] | frozenset[bytes]) -> "CaptureSide":
        """This capture with the IKE SAs of these initiator SPIs left out (another sender's)."""
        if spis:
            self.ike = [r for r in self.ike if r.spi_i not in spis]
            self.by_sa = {k: v for k, v in self.by_sa.items() if k not in spis}
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.path, "format": self.info.format, "frames": self.info.frames,
            "ip_packets": self.stats.get("ip", 0), "ip_fragments": self.stats.get("fragments", 0),
            "ike_datagrams": len(self.ike), "esp_packets": len(self.esp), "nat_keepalives": self.keepalives,
            "fragment_groups_without_first": len(self.orphans), "ike_sas": len(self.by_sa),
            "first_ts": self.info.first_ts, "last_ts": self.info.last_ts,
        }


def load_capture(path: str | os.PathLike, role: str = "capture") -> CaptureSide:
    """Read and decode one capture (raises :class:`CaptureInputError`)."""
    p = Path(path)
    info = CaptureInfo(str(p))
    stats: dict[str, int] = {}
    side = CaptureSide(role, str(p), info, stats)
    try:
        for d in datagrams(read_frames(p, info), stats):
            if not d.has_first:
                if d.proto == PROTO_UDP:
                    side.orphans.append(d)
                continue
            c = classify(d)
            if isinstance(c, IkeRecord):
                side.ike.append(c)
                side.by_sa.setdefault(c.spi_i, []).append(c)
            elif isinstance(c, EspRecord):
                side.esp.append(c)
            elif c == "keepalive":
                side.keepalives += 1
    except CaptureInputError:
        raise
    except (ValueError, IndexError, struct.error, OverflowError) as exc:  # a decoder bug must not be a traceback
        raise CaptureInputError(p, f"could not be decoded after packet {info.frames} ({type(exc).__name__}: {exc})",
                                "report this capture as a bug of aovpn-lab") from None
    return side
