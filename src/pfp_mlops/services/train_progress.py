"""Progress of a `pfp train` for displays: a snapshot per event (the CLI's rich view, or plain log lines).

Study counts are read from the storage at trial boundaries only, never per epoch: on a shared PostgreSQL study
that is one query per trial, not one per epoch per worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainProgress:
    """A snapshot for progress displays (the CLI's rich view, or plain log lines)."""

    event: str  # start | trial_start | epoch | trial_end | end
    study: str
    trial: int  # position in the budget, 1-based (earlier runs' trials count)
    n_trials: int
    trial_number: int | None
    epoch: int
    epochs: int
    current_map50: float | None
    best_map50: float | None
    complete: int
    pruned: int
    failed: int
    elapsed_s: float
    remaining_s: float | None
    message: str = ""

    def line(self) -> str:
        cur = "-" if self.current_map50 is None else f"{self.current_map50:.4f}"
        best = "-" if self.best_map50 is None else f"{self.best_map50:.4f}"
        left = "" if self.remaining_s is None else f", budget left {_hms(self.remaining_s)}"
        return (f"trial {self.trial}/{self.n_trials} epoch {self.epoch}/{self.epochs}: valid mAP50 {cur} "
                f"(best {best}; pruned {self.pruned}, failed {self.failed}; elapsed {_hms(self.elapsed_s)}{left})")


def _hms(s: float) -> str:
    s = max(int(s), 0)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """Turns the search's state into TrainProgress events for the sink (or plain lines through ctx.say)."""

    def __init__(self, search: Any) -> None:
        self.s = search
        self.sink: Callable[[TrainProgress], None] | None = search.ctx.extra.get("train_progress")
        self.best_value: float | None = None
        self.counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}

    def refresh(self, trials: list[Any] | None = None) -> None:
        """Study counts and best value for the display: read at trial boundaries (or given), never every epoch."""
        from pfp_mlops.domain.study_budget import best as best_of

        trials = self.s.study.trials() if trials is None else trials
        best = best_of(trials)
        self.counts = {st: sum(t.state == st for t in trials) for st in ("COMPLETE", "PRUNED", "FAIL")}
        self.best_value = best.value if best else None

    def emit(self, event: str, *, epoch: int = 0, epochs: int = 0, current: float | None = None,
             message: str = "", trials: list[Any] | None = None) -> None:
        """`trials`: the study as the caller just read it (saves a storage round trip)."""
        s = self.s
        # Plain log lines (CI, workers) show counts per epoch only: the next trial_start refreshes them anyway.
        if event != "epoch" and (trials is not None or self.sink is not None or event != "trial_end"):
            self.refresh(trials)
        c = self.counts
        p = TrainProgress(event, s.study_name, s.position, s.sc.n_trials, s.current_trial, epoch, epochs,
                          current, self.best_value, c["COMPLETE"], c["PRUNED"], c["FAIL"], time.time() - s.t0,
                          s.remaining(), message)
        if self.sink is not None:
            self.sink(p)
        if message:
            s.ctx.say(message)
        elif event == "epoch" and self.sink is None:
            s.ctx.say(p.line())
