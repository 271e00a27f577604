"""Is a spread of clients over backends even? Decided by a test, not by a fixed percentage.

A balancer that assigns clients uniformly at random (or by a good hash of their address)
gives each of k backends a count that is Binomial(n, 1/k). Whether 30/20 over two
backends is fine depends on n, so each backend's count gets an exact two-sided binomial
test (the probability, under fairness, of a count at most as likely as the one seen),
the smallest p-value is corrected for having tested k backends (Bonferroni; with two
backends the two tests are the same test) and compared with ``alpha`` from
profiles/load-balancing.yml. A backend with no client at all is uneven on its own once every
backend could have had one: that is a dead or forgotten backend, which a test on a
handful of clients would not have the power to see.

The probabilities are exact integers (comb(n, i) * (k-1)^(n-i) over k^n), so no
floating-point tolerance decides which outcomes are "at most as likely".

    >>> binomial_p(5, 10, 2)
    1.0
    >>> round(binomial_p(0, 10, 2), 5)
    0.00195
    >>> r = evaluate({"gw1": 9, "gw2": 1}, alpha=0.05)
    >>> r.even, round(r.p_value, 4), r.expected
    (False, 0.0215, 5.0)
    >>> evaluate({"gw1": 6, "gw2": 4}).even
    True
    >>> evaluate({"gw1": 2, "gw2": 0}).reasons
    ['gw2 got none of 2 clients']
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from math import comb
from pathlib import Path

import yaml

from .. import paths
from ..errors import AovpnError

__all__ = ["SPREAD_FILE", "SpreadResult", "binomial_p", "evaluate", "settings"]

SPREAD_FILE = paths.PROFILES / "load-balancing.yml"


@dataclass(frozen=True)
class Settings:
    alpha: float
    empty_backend_min_per_backend: int


@lru_cache(maxsize=4)
def settings(path: Path = SPREAD_FILE) -> Settings:
    """The ``spread`` section of profiles/load-balancing.yml, checked."""
    try:
        data = (yaml.safe_load(Path(path).read_text()) or {}).get("spread") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise AovpnError(f"cannot read {path}: {exc}", hint="restore profiles/load-balancing.yml") from None
    alpha = data.get("alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise AovpnError(f"{path}: spread.alpha: expected a probability between 0 and 1, got {alpha!r}",
                         hint="set spread.alpha to e.g. 0.001")
    empty = data.get("empty_backend_min_per_backend", 1)
    if isinstance(empty, bool) or not isinstance(empty, int) or empty < 1:
        raise AovpnError(f"{path}: spread.empty_backend_min_per_backend: expected a whole number >= 1, got {empty!r}",
                         hint="set it to 1 (flag an empty backend as soon as every backend could have had a client)")
    return Settings(float(alpha), empty)


def binomial_p(x: int, n: int, k: int) -> float:
    """Exact two-sided p-value of ``x`` successes in ``n`` trials of probability 1/k.

    The sum of the probabilities of every outcome no more likely than ``x``.

    >>> binomial_p(3, 3, 3) == 1 / 27
    True
    """
    if k < 1 or n < 0 or not 0 <= x <= n:
        raise ValueError(f"need 0 <= x <= n and k >= 1 (x={x}, n={n}, k={k})")
    if k == 1:
        return 1.0
    # weight(i) * k^-n is P(X = i); integers keep the comparison exact
    weights = [comb(n, i) * (k - 1) ** (n - i) for i in range(n + 1)]
    seen = weights[x]
    tail = sum(w for w in weights if w <= seen)
    return min(1.0, tail / k ** n)


@dataclass
class SpreadResult:
    """The figures of one spread and the verdict: ``even`` False with ``reasons`` when not."""

    n: int
    counts: dict[str, int]
    expected: float                     # n / k clients per backend under a fair balancer
    p_values: dict[str, float]          # each backend's exact two-sided binomial p-value
    p_value: float                      # the smallest, corrected for the number of tests
    alpha: float
    even: bool
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def evaluate(counts: dict[str, int], alpha: float | None = None,
             empty_min_per_backend: int | None = None) -> SpreadResult:
    """Judge ``counts`` (backend name -> clients; every backend, zeros included).

    ``alpha`` and ``empty_min_per_backend`` default to profiles/load-balancing.yml.
    """
    if not counts:
        raise AovpnError("a spread needs at least one backend", hint="pass every backend's count, zeros included")
    bad = {name: c for name, c in counts.items() if isinstance(c, bool) or not isinstance(c, int) or c < 0}
    if bad:
        raise AovpnError(f"spread counts must be whole numbers >= 0: {bad}", hint="count clients per backend")
    cfg = settings()
    alpha = cfg.alpha if alpha is None else alpha
    empty_min = cfg.empty_backend_min_per_backend if empty_min_per_backend is None else empty_min_per_backend
    k, n = len(counts), sum(counts.values())
    p_values = {name: binomial_p(c, n, k) for name, c in counts.items()}
    tests = 1 if k <= 2 else k  # with two backends the counts are x and n-x: one test
    p_value = min(1.0, min(p_values.values()) * tests)
    reasons = []
    worst = min(p_values, key=lambda name: p_values[name])
    if p_value < alpha:
        reasons.append(f"{worst} got {counts[worst]} of {n} clients, {n / k:g} expected "
                       f"(p = {p_value:.2g} < {alpha:g})")
    if n >= k * empty_min:
        # an empty backend already named by the test is not named twice
        reasons += [f"{name} got none of {n} clients" for name, c in counts.items()
                    if c == 0 and not (name == worst and p_value < alpha)]
    return SpreadResult(n, dict(counts), n / k, p_values, p_value, alpha, not reasons, reasons)
