"""`train.search.parallel`: how processes on several machines share one Optuna study (issue 16).

Optuna fails a trial whose process died only if a heartbeat is configured, and only when some process looks
(`fail_stale_trials`); PostgreSQL connections idle for an hour are dropped by firewalls and poolers, about as
long as one epoch on real data. These settings make both explicit. The grace must exceed the longest stretch in
which a live worker cannot write its heartbeat: the heartbeat is a thread, so that is a storage outage, not a
long validation pass; the default leaves ten minutes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ParallelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    heartbeat_interval_s: int = Field(default=30, ge=1)  # each running trial writes a heartbeat this often
    heartbeat_grace_s: int = Field(default=600, ge=2)  # no heartbeat for this long: the trial is stale (FAIL)
    stale_retries: int = Field(default=1, ge=0)  # a stale trial's params run again (as a new trial) this often
    pool_recycle_s: int = Field(default=1800, ge=60)  # reopen pooled DB connections older than this
    reconnect_s: float = Field(default=120, ge=0)  # keep retrying a storage that drops connections for this long
    poll_s: float = Field(default=5, gt=0)  # a worker waiting for others' trials looks at the study this often
    # TPE's constant liar (running trials count as bad, so parallel workers do not sample the same point);
    # null = on whenever more than one process may run: `--worker`, or a storage other than the local SQLite file
    constant_liar: bool | None = None

    @model_validator(mode="after")
    def _grace_after_interval(self) -> ParallelConfig:
        if self.heartbeat_grace_s <= self.heartbeat_interval_s:
            raise ValueError(f"heartbeat_grace_s ({self.heartbeat_grace_s}) must exceed heartbeat_interval_s "
                             f"({self.heartbeat_interval_s})")
        return self
