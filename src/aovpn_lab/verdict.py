"""A matrix cell's verdict: what was expected, what was observed, why, and the evidence.

Every cell ends in one of four states: `pass` (observed what the requirement expects),
`fail` (observed something else), `inconclusive` (the evidence is missing or its views
disagree: never a pass) and `not-applicable` (the cell cannot fail on this target; the
reason says why and where the property is checked instead).

    >>> v = Verdict.compare(Expectation("connected", "AOVPN-IKE-CONN-001", "open network"), "connected", {})
    >>> v.state, v.holds, v.reason
    ('pass', True, 'open network')
    >>> Verdict.not_applicable("AOVPN-IKE-PORT-001", "ESP is always UDP-encapsulated here").state
    'not-applicable'
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


PASS, FAIL, INCONCLUSIVE, NOT_APPLICABLE = "pass", "fail", "inconclusive", "not-applicable"
STATES = (PASS, FAIL, INCONCLUSIVE, NOT_APPLICABLE)


@dataclass
class Verdict:
    requirement: str
    expected: str
    observed: str
    state: str
    reason: str
    fix: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"verdict state {self.state!r} is not one of {', '.join(STATES)}")

    @property
    def holds(self) -> bool:
        return self.state == PASS

    @classmethod
    def not_applicable(cls, requirement: str, reason: str, evidence: dict[str, Any] | None = None,
                       expected: str = "") -> "Verdict":
        return cls(requirement, expected or NOT_APPLICABLE, NOT_APPLICABLE, NOT_APPLICABLE, reason, "",
                   evidence or {})

    @classmethod
    def inconclusive(cls, exp: Expectation, observed: str, reason: str, evidence: dict[str, Any]) -> "Verdict":
        return cls(exp.requirement, exp.outcome, observed, INCONCLUSIVE, reason, "", evidence)

    @classmethod
    def compare(cls, exp: Expectation, observed: str, evidence: dict[str, Any], detail: str = "",
                predicted: Expectation | None = None) -> "Verdict":
        """Judge `observed` by the requirement-based `exp`; explain a deviation with `predicted`
        (what the reason model says this particular deployment does)."""
        holds = observed == exp.outcome
        if holds:
            return cls(exp.requirement, exp.outcome, observed, PASS, exp.reason, exp.fix, evidence)
        if predicted is not None and predicted.outcome == observed:
            why, fix = predicted.reason, predicted.fix
        else:
            why = "not what the reason model predicts" + (f" ({predicted.outcome})" if predicted else "")
            fix = ""
        reason = f"expected {exp.outcome}, observed {observed}: {why}" + (f" [{detail}]" if detail else "")
        return cls(exp.requirement, exp.outcome, observed, FAIL, reason, fix or exp.fix, evidence)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "holds": self.holds}
