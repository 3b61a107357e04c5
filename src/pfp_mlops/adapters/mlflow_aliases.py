"""Compare-and-set alias moves on MLflow, whose alias API has none (a mixin of `mlflow_registry.Registry`)."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from pfp_mlops.adapters.mlflow_common import error_code, translated
from pfp_mlops.domain.errors import ConcurrentPromotion

EPOCH_TAG = "pfp.epoch."
CLAIM_PREFIX = "pfp-claim:"
CLAIM_STALE_S = 120.0


class AliasCAS:
    """`move_alias` by epoch claims. Needs `self.client` (an MlflowClient)."""

    client: Any

    @translated
    def aliases(self, name: str) -> dict[str, int]:
        rm = self._registered_model(name)  # type: ignore[attr-defined]
        return {a: int(v) for a, v in ((rm.aliases or {}) if rm is not None else {}).items()}

    @translated
    def alias_version(self, name: str, alias: str) -> int | None:
        return self.aliases(name).get(alias)

    @translated
    def move_alias(self, name: str, alias: str, version: int | None, *, expected: int | None) -> None:
        """Point `alias` at `version` (None deletes it) only if it still points at `expected` (compare-and-set).

        MLflow's alias API has no compare-and-set, and "read the alias, then set it" lets two processes that read
        the same value both win (re-reading after the set cannot tell them apart when both move it to the same
        version). So every move claims an epoch: the registered model carries tag `pfp.epoch.<alias>` = E, and a
        move first creates the (then soft-deleted) experiment `pfp-claim:<name>:<alias>:<E+1>`. Experiment names
        are unique in every MLflow store (a database constraint, also over REST), so exactly one of the processes
        that read epoch E can claim E+1; the others stop with ConcurrentPromotion and change nothing. The winner
        sets the alias, then the epoch tag. A process that reads after the winner's move sees the alias moved.
        A claim whose owner died before bumping the epoch is taken over after CLAIM_STALE_S seconds.
        """
        for _attempt in range(3):
            rm = self.client.get_registered_model(name)
            raw = (rm.aliases or {}).get(alias)
            current = int(raw) if raw is not None else None
            if current != expected:
                raise ConcurrentPromotion(
                    f"alias {alias!r} of {name} moved to {current} since the decision (expected {expected}); "
                    f"nothing changed, run again"
                )
            epoch = _int((rm.tags or {}).get(EPOCH_TAG + alias))
            claimed = self._claim(name, alias, epoch + 1)
            if claimed is None:
                break
            if not claimed:  # the owner of claim E+1 died before bumping the epoch: skip past it
                self.client.set_registered_model_tag(name, EPOCH_TAG + alias, str(epoch + 1))
                continue
            raise ConcurrentPromotion(
                f"alias {alias!r} of {name} is being moved by another process (epoch {epoch + 1} already claimed); "
                f"nothing changed, run again"
            )
        else:
            raise ConcurrentPromotion(f"alias {alias!r} of {name}: could not claim a move; nothing changed, run again")
        if version is None:
            self.client.delete_registered_model_alias(name, alias)
        else:
            self.client.set_registered_model_alias(name, alias, str(version))
        self.client.set_registered_model_tag(name, EPOCH_TAG + alias, str(epoch + 1))

    def _claim(self, name: str, alias: str, epoch: int) -> bool | None:
        """Claim one alias move. None: claimed by us. True: held by a live process. False: held by a dead one."""
        from mlflow.exceptions import MlflowException

        claim = f"{CLAIM_PREFIX}{name}:{alias}:{epoch}"
        try:
            exp_id = self.client.create_experiment(claim, tags={"pfp.claim_by": f"{os.getpid()}"})
        except MlflowException as e:
            if error_code(e) != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = self.client.get_experiment_by_name(claim)
            age_s = time.time() - (exp.creation_time or 0) / 1000 if exp is not None else 0.0
            return age_s < CLAIM_STALE_S
        with contextlib.suppress(MlflowException):  # hide it from the UI; the name stays taken
            self.client.delete_experiment(exp_id)
        return None


def _int(v: str | None) -> int:
    try:
        return int(v) if v is not None else 0
    except ValueError:
        return 0
