"""`train.trackers` and `train.wandb`: where a training is tracked besides MLflow (issue 18).

MLflow is always one of the trackers: the registry reads the training run (weights, lineage, split manifest), so
it stays the source of truth; Weights & Biases is an optional mirror of the same study.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Tracker = Literal["mlflow", "wandb"]


class WandbConfig(BaseModel):
    """The W&B mirror. WANDB_PROJECT / WANDB_ENTITY override project / entity (environment > YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str | None = None  # null = WANDB_PROJECT, else the model name
    entity: str | None = None  # null = WANDB_ENTITY, else the key's default entity
    # A W&B outage costs at most this at the start of `pfp train` (then training goes on without W&B) ...
    init_timeout_s: float = Field(default=30, gt=0, le=600)
    # ... and at most this per run at its end (what is not uploaded by then stays on disk for `wandb sync`).
    finish_timeout_s: float = Field(default=60, gt=0, le=3600)


def check_trackers(v: list[str]) -> list[str]:
    out = list(dict.fromkeys(v))  # order kept, duplicates dropped
    if "mlflow" not in out:
        raise ValueError("mlflow must be one of the trackers (the registry reads the training run from it); "
                         "add wandb beside it: [mlflow, wandb]")
    return out
