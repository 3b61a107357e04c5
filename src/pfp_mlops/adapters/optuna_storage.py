"""The Optuna RDB storage for studies shared between machines: heartbeats, stale-trial retries, reconnects.

What Optuna 5.0 does and does not do (read in its code, `storages/_rdb/storage.py`, `storages/_heartbeat.py`,
`study/_optimize.py`):
- a heartbeat is written only by `Study.optimize`'s thread; pfp drives trials with ask/tell, so `Heartbeat` below
  is that thread for one trial;
- stale RUNNING trials are failed only by `fail_stale_trials`, which only `optimize` calls before each trial: pfp
  calls it itself (`reap`) when a worker starts, before every trial, while waiting and on `pfp train --reap`;
- a trial that never wrote a heartbeat is never stale (Optuna skips it), so the heartbeat starts at `ask`;
- `pool_pre_ping` is on by default for MySQL only; PostgreSQL gets it here, with `pool_recycle`;
- `RetryHeartbeatStaleTrialCallback` (the non-deprecated name of RetryFailedTrialCallback) re-queues a stale
  trial's params as a WAITING trial that the next `ask` pops, with `failed_trial`/`retry_history` system attrs.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pfp.tuner")


def build_storage(url: str, *, heartbeat_interval_s: int, grace_s: int, stale_retries: int,
                  pool_recycle_s: int, on_stale: Callable[[Any], None]) -> Any:
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if url.startswith("sqlite"):
        # Several processes on one file: wait for the lock instead of failing after SQLite's default 5 s.
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 120}}
    else:
        kwargs = {"pool_pre_ping": True, "pool_recycle": pool_recycle_s}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=stale_retries)

    def stale(study: Any, trial: Any) -> None:
        on_stale(trial)
        if stale_retries > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry(study, trial)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_interval_s,
                                          grace_period=grace_s, heartbeat_stale_trial_callback=stale)


def fail_stale(study: Any) -> None:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class Heartbeat:
    """A daemon thread writing one trial's heartbeat every interval, until `stop`.

    A failed write (the storage restarting) is logged and retried at the next beat: missing beats for less than
    the grace period harms nothing, and a training must not die because its heartbeat could not be written once.
    """

    def __init__(self, storage: Any, trial_id: int, interval_s: float) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._interval = interval_s
        self._stop = threading.Event()
        self._beat()  # before ask returns: a trial without any heartbeat can never be found stale
        self._thread = threading.Thread(target=self._run, name=f"pfp-heartbeat-{trial_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        try:
            self._storage.record_heartbeat(self._trial_id)
        except Exception as e:  # noqa: BLE001 - see the class docstring
            log.warning("heartbeat of trial id %s not written: %s", self._trial_id, str(e).splitlines()[0][:200])

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._beat()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def is_disconnect(e: BaseException) -> bool:
    """A dropped or refused database connection (worth retrying), not a constraint or a programming error.

    Optuna wraps errors raised during a commit in its StorageInternalError: the cause chain is what tells."""
    import sqlalchemy.exc as sa

    seen: BaseException | None = e
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, sa.OperationalError | sa.InterfaceError):
            return True
        if isinstance(seen, sa.DBAPIError) and getattr(seen, "connection_invalidated", False):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def call_with_reconnect(fn: Callable[[], Any], *, within_s: float, what: str) -> Any:
    """fn(), retried while the storage refuses connections (a PostgreSQL restart), for at most `within_s`."""
    deadline = time.monotonic() + within_s
    delay = 0.5
    while True:
        try:
            return fn()
        except Exception as e:
            if not is_disconnect(e) or time.monotonic() + delay > deadline:
                raise
            log.warning("Optuna storage unreachable during %s (%s); retrying in %.1fs", what,
                        str(e).splitlines()[0][:160], delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def claim_study_attr(storage: Any, study_id: int, key: str, value: Any) -> Any:
    """Set a study user attribute only if unset, atomically: the first writer wins, every caller gets its value.

    Optuna's `set_user_attr` overwrites (read, then insert or update), so two workers creating the study's MLflow
    parent run at once would both believe theirs is the one. The table's UNIQUE (study_id, key) makes a plain
    INSERT the arbiter, on PostgreSQL and SQLite alike.
    """
    import json

    import sqlalchemy

    stmt = sqlalchemy.text("INSERT INTO study_user_attributes (study_id, key, value_json) VALUES (:s, :k, :v)")
    try:
        with storage.engine.begin() as conn:
            conn.execute(stmt, {"s": study_id, "k": key, "v": json.dumps(value)})
        return value
    except sqlalchemy.exc.IntegrityError:
        return storage.get_study_user_attrs(study_id).get(key)
