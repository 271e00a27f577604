"""A matrix cell's verdict: what was expected, what was observed, why, and the evidence.

    >>> v = Verdict.compare(Expectation("connected", "AOVPN-IKE-CONN-001", "open network"), "connected", {})
    >>> v.holds, v.reason
    (True, 'open network')
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Expectation:
    outcome: str           # 'connected', or the failure cause the cell must show
    requirement: str       # requirement ID this cell checks
    reason: str            # why this outcome is expected
    fix: str = ""          # what a deployment would change when the outcome is a failure


@dataclass
class Verdict:
    requirement: str
    expected: str
    observed: str
    holds: bool
    reason: str
    fix: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def compare(cls, exp: Expectation, observed: str, evidence: dict[str, Any], detail: str = "",
                predicted: Expectation | None = None) -> "Verdict":
        """Judge `observed` by the requirement-based `exp`; explain a deviation with `predicted`
        (what the reason model says this particular deployment does)."""
        holds = observed == exp.outcome
        if holds:
            return cls(exp.requirement, exp.outcome, observed, True, exp.reason, exp.fix, evidence)
        if predicted is not None and predicted.outcome == observed:
            why, fix = predicted.reason, predicted.fix
        else:
            why = "not what the reason model predicts" + (f" ({predicted.outcome})" if predicted else "")
            fix = ""
        reason = f"expected {exp.outcome}, observed {observed}: {why}" + (f" [{detail}]" if detail else "")
        return cls(exp.requirement, exp.outcome, observed, False, reason, fix or exp.fix, evidence)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
