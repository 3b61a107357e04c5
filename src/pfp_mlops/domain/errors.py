"""The one exception tree of pfp.

    PfpError                      base; every subclass carries a one-line, user-facing message
    ├── UserError                 bad input or configuration                    → exit 2
    │   ├── ConfigError           YAML config or environment values
    │   ├── DataError             dataset_info.csv, images, labels, splits
    │   └── NotFoundError         unknown model, version, run or file
    ├── InfraError                MLflow, S3/MinIO or DVC remote unreachable     → exit 3
    ├── TrainingFailed            no training trial completed (all crashed)      → exit 1
    ├── GateFailed                a gate said no (not registered/promoted/rejected) → exit 10
    ├── Inconclusive              the interval cannot tell (guarded, bootstrap)  → exit 11
    ├── ConcurrentPromotion       an alias moved since the decision was made     → exit 12
    └── RegressionRolledBack      production regressed and was rolled back      → exit 13

Adapters translate third-party exceptions into these at the edge; the CLI maps them to exit codes in one table
(`pfp_mlops.cli.errors.EXIT_CODES`).
"""

from __future__ import annotations

from typing import Any


class PfpError(Exception):
    """Base of every error pfp reports to a user."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class UserError(PfpError):
    """Bad input or configuration: the user can fix it."""


class ConfigError(UserError):
    """An invalid YAML config file or environment value."""


class DataError(UserError):
    """An invalid dataset: CSV, image or label file, split constraints."""


class NotFoundError(UserError):
    """An unknown model, version, run or file."""


class InfraError(PfpError):
    """A service (MLflow, S3, DVC remote) could not be reached or answered with a server error."""


class TrainingFailed(PfpError):
    """Training produced no model: every trial of the study failed (the message names the last error)."""


class GateFailed(PfpError):
    """A gate refused: the model was not registered, promoted, or the challenger was rejected."""

    def __init__(self, message: str, *, decision: Any = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.decision = decision


class Inconclusive(GateFailed):
    """The statistical verdict could not separate challenger from champion: nothing changed."""


class ConcurrentPromotion(PfpError):
    """Another process moved the alias after this one made its decision; this one changed nothing."""


class RegressionRolledBack(PfpError):
    """Production was worse than the previous production and has been rolled back."""

    def __init__(self, message: str, *, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
