"""The half-open IKE SAs a client's own attempts may have left on a gateway.

A gateway keeps a half-open IKE_SA for every attempt whose IKE_SA_INIT it answered and
whose IKE_AUTH never completed, for `half_open_timeout` (strongSwan: 30 s). From
`block_threshold` of them on (strongSwan: 5 per source address) it ignores that source's
IKE_SA_INIT altogether, so the next attempt would see a silence that has nothing to do
with the path. The ledger remembers such attempts per (namespace, gateway) and, before
an attempt that the gateway could ignore, waits until enough of them have expired,
saying so on stderr.

    >>> ledger = Ledger(threshold=2, timeout=30.0, clock=lambda: 100.0)
    >>> ledger.record("ns", "203.0.113.10", when=90.0); ledger.record("ns", "203.0.113.10", when=95.0)
    >>> ledger.pending("ns", "203.0.113.10"), ledger.wait_needed("ns", "203.0.113.10")
    (2, 20.5)
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

# strongSwan's defaults (charon.block_threshold, charon.half_open_timeout); the lab gateways
# run with them too (profiles/charon.yml). RRAS keeps its own, undocumented, limits.
BLOCK_THRESHOLD = 5
HALF_OPEN_TIMEOUT = 30.0
# Our record is made when the attempt ends, after the gateway started its timer: a little
# margin covers clock reading and the gateway's timer granularity.
MARGIN = 0.5


def default_path() -> Path:
    """Where `aovpn-lab probe ikev2` keeps its ledger between runs (AOVPN_HALF_OPEN_LEDGER overrides)."""
    return Path(os.environ.get("AOVPN_HALF_OPEN_LEDGER", "/var/lib/aovpn-lab/half-open.json"))


def left_half_open(messages: list, ike_sa: bool) -> bool:
    """Did this attempt leave a half-open SA? The gateway accepted IKE_SA_INIT (its response
    carried an SA payload), and no IKE SA came of it: no IKE_AUTH response ever arrived (a
    gateway that answers IKE_AUTH, even with an error, has settled the SA either way)."""
    if ike_sa:
        return False
    accepted = any(m.exchange == "IKE_SA_INIT" and m.direction == "received" and "SA" in m.payloads
                   for m in messages)
    answered = any(m.exchange == "IKE_AUTH" and m.direction == "received" for m in messages)
    return accepted and not answered


class Ledger:
    def __init__(self, path: Path | None = None, *, threshold: int = BLOCK_THRESHOLD,
                 timeout: float = HALF_OPEN_TIMEOUT, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.path, self.threshold, self.timeout = path, threshold, timeout
        self.clock, self.sleep = clock, sleep
        self.entries: dict[str, list[float]] = self._load()

    @staticmethod
    def key(netns: str | None, gateway: str) -> str:
        # No name: the namespace this process runs in, told apart by its inode (each is a source).
        return f"{netns or 'netns:' + str(os.stat('/proc/self/ns/net').st_ino)} {gateway}"

    def _load(self) -> dict[str, list[float]]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: [float(t) for t in v] for k, v in data.items() if isinstance(v, list)}

    def _save(self, key: str) -> None:
        """Write this process's entries for `key`, keeping what other processes (xdist
        workers, other runs, each testing from its own namespace) wrote for theirs."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            merged = self._load()
            if key in self.entries:
                merged[key] = self.entries[key]
            else:
                merged.pop(key, None)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(merged))
            os.replace(tmp, self.path)
            self.entries = merged

    def _live(self, key: str) -> list[float]:
        now = self.clock()
        live = [t for t in self.entries.get(key, []) if now - t < self.timeout + MARGIN]
        if live:
            self.entries[key] = live
        else:
            self.entries.pop(key, None)
        return live

    def record(self, netns: str | None, gateway: str, when: float | None = None) -> None:
        key = self.key(netns, gateway)
        self.entries.setdefault(key, []).append(self.clock() if when is None else when)
        self._live(key)
        self._save(key)

    def forget(self, netns: str | None, gateway: str) -> None:
        """The gateway no longer holds this source's half-open SAs (a lab gateway's were ended)."""
        key = self.key(netns, gateway)
        if key in self.entries:
            self.entries.pop(key)
            self._save(key)

    def pending(self, netns: str | None, gateway: str) -> int:
        return len(self._live(self.key(netns, gateway)))

    def wait_needed(self, netns: str | None, gateway: str, room: int = 0) -> float:
        """Seconds until the gateway answers us again with `room` more half-open SAs to spare.

        It answers an IKE_SA_INIT while fewer than `threshold` of ours are half-open. An
        attempt may add one, and the differential test after it must still be answered:
        such an attempt asks for room=1."""
        live = sorted(self._live(self.key(netns, gateway)))
        allowed = max(0, self.threshold - 1 - room)   # how many may still be pending when we send
        if len(live) <= allowed:
            return 0.0
        # the oldest that must expire for the count to drop to `allowed`
        expire_at = live[len(live) - allowed - 1] + self.timeout + MARGIN
        return max(0.0, expire_at - self.clock())

    def before_attempt(self, netns: str | None, gateway: str, room: int = 0, stream=None) -> float:
        """Wait out the gateway's DoS protection when our own attempts could trigger it."""
        wait = self.wait_needed(netns, gateway, room)
        if wait > 0:
            stream = stream or sys.stderr   # looked up now: a test runner may have replaced it
            print(f"aovpn-lab: {self.pending(netns, gateway)} earlier attempts may have left half-open IKE SAs "
                  f"on {gateway} (it ignores a source from {self.threshold} on, for {self.timeout:g} s): "
                  f"waiting {wait:.1f} s so that its silence is not mistaken for the path's", file=stream, flush=True)
            self.sleep(wait)
        return wait

    def after_attempt(self, netns: str | None, gateway: str, messages: list, ike_sa: bool) -> bool:
        left = left_half_open(messages, ike_sa)
        if left:
            self.record(netns, gateway)
        return left
