"""The one table from exception types to exit codes, and the one place that prints errors."""

from __future__ import annotations

from pfp_mlops.domain import errors as E

# Most specific first; the first isinstance match wins.
EXIT_CODES: list[tuple[type[BaseException], int, str]] = [
    (E.Inconclusive, 11, "verdict inconclusive: the test set cannot tell; nothing changed, a human decides"),
    (E.GateFailed, 10, "a gate was not met: not registered, not promoted, challenger rejected"),
    (E.ConcurrentPromotion, 12, "lost a concurrent promotion"),
    (E.RegressionRolledBack, 13, "regression detected and rolled back"),
    (E.InfraError, 3, "infrastructure unreachable: MLflow, S3/MinIO, DVC remote"),
    (E.TrainingFailed, 1, "training produced no model: every trial failed"),
    (E.UserError, 2, "bad input or configuration: usage, CSV, labels, env values, unknown version"),
]
INTERNAL = 1
INTERRUPTED = 130


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    for cls, code, _ in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return INTERNAL


def exit_code_of_outcome(result: object) -> int:
    """The exit code `pfp` gives for a result the Python API returned (gate outcomes are values there): 0 for a
    success, else the code of the exception the CLI raises for it, from the table above."""
    from pfp_mlops.outcomes import outcome_error

    if hasattr(result, "exit_code") and hasattr(result, "steps"):  # run-all carries its own
        return int(result.exit_code)  # type: ignore[attr-defined]
    error = outcome_error(result)
    return 0 if error is None else exit_code_for(error)
