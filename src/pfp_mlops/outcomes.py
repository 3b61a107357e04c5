"""Gate outcomes as values, for the Python API: `Refused`, `StatusReport`, and the way back to the CLI's codes.

The services raise GateFailed / Inconclusive / RegressionRolledBack so that the CLI exits with 10 / 11 / 13; the
API (`pfp_mlops.api.Project`) returns what those exceptions carry instead (`as_outcome`), and `outcome_error` maps a
returned outcome back to the exception the CLI raises for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pfp_mlops.domain.errors import GateFailed, Inconclusive, PfpError, RegressionRolledBack
from pfp_mlops.domain.models import Decision, Result


@dataclass(frozen=True)
class Refused(Result):
    """A step a gate refused before it changed anything: which step, the decision (verdict + reasons), the message.

    `inconclusive` is true for an inconclusive verdict (the CLI's exit 11), false for a plain refusal (exit 10).
    """

    step: str
    decision: Decision
    message: str
    inconclusive: bool = False

    @property
    def reasons(self) -> list[str]:
        """The decision's human-readable reasons."""
        return list(self.decision.reasons)


@dataclass(frozen=True)
class StatusReport(Result):
    """`pfp status` as a value: every version with its aliases, stage and test metrics, and any alias/tag drift."""

    model: str
    tracking_uri: str
    versions: list[dict[str, Any]]
    aliases: dict[str, int]
    drift: list[str] = field(default_factory=list)
    other: dict[str, Any] = field(default_factory=dict)  # anything else the status service reports

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StatusReport:
        """From the status service's dict (the JSON `pfp status --json` prints)."""
        known = ("model", "tracking_uri", "versions", "aliases", "drift")
        return cls(*(data.get(k) for k in known[:4]), list(data.get("drift") or []),
                   {k: v for k, v in data.items() if k not in known})

    def alias(self, name: str) -> int | None:
        """The version holding an alias (`production`, `staging`), or None."""
        return self.aliases.get(name)


def outcome_error(result: Any) -> PfpError | None:
    """The exception `pfp` raises for this outcome (GateFailed, Inconclusive, RegressionRolledBack), or None.

    The Python API returns gate outcomes instead of raising them; this maps them back, so a script exits with the
    CLI's exit code from the one table (`pfp_mlops.cli.errors`).
    """
    if isinstance(result, Refused):
        cls = Inconclusive if result.inconclusive else GateFailed
        return cls(result.message, decision=result.decision)
    action = getattr(result, "action", None)
    if action == "inconclusive":
        return Inconclusive(f"verdict inconclusive: {'; '.join(result.decision.reasons)}", decision=result)
    if action == "rejected":
        return GateFailed(f"challenger v{result.challenger} rejected: {'; '.join(result.decision.reasons)}",
                          decision=result)
    if action == "rolled_back" and hasattr(result, "previous"):
        return RegressionRolledBack(f"production v{result.production} regressed; rolled back to v{result.previous}",
                                    result=result)
    return None


def as_outcome(step: str, call: Callable[[], Any]) -> Any:
    """Run a step; a gate's refusal becomes a value (the ValidateResult/RegressionResult it carries, or Refused)."""
    try:
        return call()
    except RegressionRolledBack as e:
        if e.result is not None:
            return e.result
        raise
    except GateFailed as e:
        carried = e.decision
        if carried is not None and hasattr(carried, "action"):  # validate: rejected / inconclusive
            return carried
        decision = carried if isinstance(carried, Decision) else Decision(
            step, False, [e.message], dict(e.details), verdict="inconclusive" if isinstance(e, Inconclusive) else
            "refused")
        return Refused(step, decision, e.message, inconclusive=isinstance(e, Inconclusive))
