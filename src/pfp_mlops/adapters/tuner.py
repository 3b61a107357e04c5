"""Optuna adapter: one study on an RDB storage (SQLite by default, PostgreSQL to share it between machines).

With `adapters/optuna_storage.py`, the only modules importing optuna. The service drives the study with ask/tell,
so that it decides itself what a finished trial is (budgets across runs and processes), how a crash or Ctrl-C is
recorded, and when to prune: Optuna's own `optimize` would turn a KeyboardInterrupt into a FAIL behind the
caller's back. What `optimize` would do besides (heartbeats, failing stale trials) is done here explicitly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pfp_mlops.adapters import optuna_storage
from pfp_mlops.domain.errors import ConfigError, InfraError, PfpError
from pfp_mlops.settings import SearchConfig, SearchParam

log = logging.getLogger("pfp.tuner")

COMPLETE, PRUNED, FAIL, RUNNING, WAITING = "COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"


@contextlib.contextmanager
def translate_errors(storage_url: str) -> Iterator[None]:
    """Storage errors → InfraError (exit 3), bad URLs → ConfigError (exit 2)."""
    try:
        yield
    except PfpError:
        raise
    except (ImportError, ValueError) as e:  # unknown dialect / driver, malformed URL, incompatible space
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        if "distribution" in first.lower():
            raise ConfigError(f"train.search.space does not match the earlier trials of this study ({first}); "
                              "set a new train.search.study_name") from None
        raise ConfigError(f"PFP_OPTUNA_STORAGE: cannot use {_redact(storage_url)}: {first}") from None
    except Exception as e:
        name = type(e).__module__ + "." + type(e).__name__
        if any(k in name for k in ("sqlalchemy", "psycopg", "sqlite3", "pymysql", "StorageInternalError")) \
                or isinstance(e, OSError):
            first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise InfraError(f"Optuna storage {_redact(storage_url)} unreachable or failing: {first}") from None
        raise


def _redact(url: str) -> str:
    """postgresql://user:secret@host/db → postgresql://user:***@host/db"""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


@dataclass(frozen=True)
class TrialSummary:
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    user_attrs: dict[str, Any]
    duration_s: float | None
    retried_from: tuple[int, ...] = ()  # a stale trial's re-run: the numbers it replaces (Optuna's retry_history)
    started_at: float | None = None  # epoch seconds
    system: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


class Trial:
    """One running trial: its sampled params, `report` per epoch, `should_prune`."""

    def __init__(self, study: Study, trial: Any, params: dict[str, Any], *, baseline: bool,
                 retry_of: int | None) -> None:
        self._study = study
        self._trial = trial
        self.number: int = trial.number
        self.params = params
        self.baseline = baseline
        self.retry_of = retry_of  # the trial number this one re-runs (its worker stopped heartbeating)
        self._complete_at_start: int | None = None
        self._heartbeat: optuna_storage.Heartbeat | None = None

    def start_heartbeat(self) -> None:
        st = self._study
        self._heartbeat = optuna_storage.Heartbeat(st._rdb, self._trial._trial_id, st.heartbeat_interval_s)

    def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def set_attr(self, key: str, value: Any) -> None:
        self._study._call(lambda: self._trial.set_user_attr(key, value), "set_user_attr")

    def report(self, value: float, step: int) -> None:
        """The intermediate value the pruner judges (not stored without a pruner: a commit per epoch for nothing)."""
        if value is None or math.isnan(value) or self._study.pruner_name == "none":
            return
        self._study._call(lambda: self._trial.report(float(value), step), "report")

    def should_prune(self, epoch: int) -> bool:
        """The pruner's verdict, once the study has `startup_trials` completed trials (the rest is the pruner's).

        Storage round trips are kept off the epochs that cannot prune: they cost a commit each on SQLite."""
        st = self._study
        if st.pruner_name == "none" or epoch < max(st.warmup_epochs, 1):
            return False
        if self._complete_at_start is None:
            self._complete_at_start = st.count(COMPLETE)
        if self._complete_at_start < st.startup_trials:
            return False
        return bool(st._call(self._trial.should_prune, "should_prune"))


class Study:
    """A maximising Optuna study of VALID mAP50, created or loaded by name."""

    def __init__(self, url: str, name: str, cfg: SearchConfig, *, max_epochs: int, parallel: bool = False) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pc = cfg.parallel
        self.url = url
        self.name = name
        self.pruner_name = cfg.pruner
        self.warmup_epochs = cfg.pruner_warmup_epochs
        self.startup_trials = cfg.pruner_startup_trials
        self.heartbeat_interval_s = pc.heartbeat_interval_s
        self.grace_s = pc.heartbeat_grace_s
        self.reconnect_s = pc.reconnect_s
        self._space = cfg.space
        self.stale: list[TrialSummary] = []  # trials this process failed as stale (filled by `reap`)
        self.storage_s = 0.0  # seconds spent in storage calls (heartbeat thread excluded: it overlaps training)
        self.storage_calls = 0
        # Optuna 5 turns the constant liar on by default; pfp states it: on when several processes may sample.
        self.constant_liar = pc.constant_liar if pc.constant_liar is not None else (
            parallel or not url.startswith("sqlite"))
        sampler = optuna.samplers.TPESampler(seed=cfg.sampler_seed, n_startup_trials=min(10, max(cfg.n_trials // 3, 1)),
                                             constant_liar=self.constant_liar)
        pruner = _pruner(cfg, max_epochs)
        with translate_errors(url):
            self._rdb = optuna_storage.build_storage(
                url, heartbeat_interval_s=pc.heartbeat_interval_s, grace_s=pc.heartbeat_grace_s,
                stale_retries=pc.stale_retries, pool_recycle_s=pc.pool_recycle_s,
                on_stale=lambda t: self.stale.append(_summary(t)))
            self._study = self._call(lambda: optuna.create_study(
                storage=self._rdb, study_name=name, sampler=sampler, pruner=pruner, direction="maximize",
                load_if_exists=True), "create_study")
        # opening (schema check, create or load) is paid once per process, not per trial: reported apart
        self.open_s, self.storage_s, self.storage_calls = self.storage_s, 0.0, 0

    def _call(self, fn: Any, what: str) -> Any:
        """One storage operation: retried through a dropped connection, then errors translated; timed (the
        coordination cost of a shared study, reported per trial by workers and the benchmark)."""
        t0 = time.perf_counter()
        try:
            with translate_errors(self.url):
                return optuna_storage.call_with_reconnect(fn, within_s=self.reconnect_s, what=what)
        finally:
            self.storage_s += time.perf_counter() - t0
            self.storage_calls += 1

    def trials(self) -> list[TrialSummary]:
        raw = self._call(lambda: self._study.get_trials(deepcopy=False), "get_trials")
        return [_summary(t) for t in raw]

    def count(self, *states: str) -> int:
        import optuna

        wanted = tuple(optuna.trial.TrialState[s] for s in states)
        return len(self._call(lambda: self._study.get_trials(deepcopy=False, states=wanted), "get_trials"))

    def ask(self, *, baseline: bool, may_pop_retry: bool = True) -> Trial:
        """A new trial, its heartbeat started: the baseline samples nothing (train.hyperparameters as configured),
        the others the space. A stale trial's retry (queued by Optuna) is popped first and keeps its params;
        `may_pop_retry=False` (the caller saw no WAITING trial) saves reading the new trial's system attributes."""

        def ask() -> Any:
            with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize": pfp beats itself
                warnings.simplefilter("ignore")
                return self._study.ask()

        # Each step retried on its own: a retried `ask` after a created trial would leave an orphan RUNNING trial.
        t = self._call(ask, "ask")
        trial = Trial(self, t, {}, baseline=baseline, retry_of=None)
        trial.start_heartbeat()  # at once: a trial that never beat can never be found stale
        if may_pop_retry:
            system = self._call(lambda: self._rdb.get_trial_system_attrs(t._trial_id), "get_trial_system_attrs")
            trial.retry_of = system.get("failed_trial")
        if trial.retry_of is not None:
            trial.baseline = bool(t.user_attrs.get("baseline"))
        if not trial.baseline:  # suggesting again returns what was suggested: safe to retry
            trial.params = self._call(lambda: {k: _suggest(t, k, p) for k, p in self._space.items()}, "suggest")
        elif trial.retry_of is None:
            self._call(lambda: t.set_user_attr("baseline", True), "set_user_attr")
        return trial

    def tell(self, trial: Trial, state: str, value: float | None = None) -> None:
        import optuna

        st = optuna.trial.TrialState[state]
        trial.stop_heartbeat()
        if st == optuna.trial.TrialState.COMPLETE:
            self._call(lambda: self._study.tell(trial._trial, float(value), state=st,  # type: ignore[arg-type]
                                                skip_if_finished=True), "tell")
        else:
            self._call(lambda: self._study.tell(trial._trial, state=st, skip_if_finished=True), "tell")

    def reap(self) -> list[TrialSummary]:
        """Fail the RUNNING trials whose heartbeat is older than the grace; return those this call failed."""
        self.stale = []
        self._call(lambda: optuna_storage.fail_stale(self._study), "fail_stale_trials")
        return list(self.stale)

    def claim_attr(self, key: str, value: Any) -> Any:
        """The study attribute `key`: set to `value` if nobody set it before (atomic), else the existing value."""
        return self._call(lambda: optuna_storage.claim_study_attr(self._rdb, self._study._study_id, key, value),
                          "claim")

    def attrs(self) -> dict[str, Any]:
        return dict(self._call(lambda: self._rdb.get_study_user_attrs(self._study._study_id), "attrs"))

    def set_attr(self, key: str, value: Any) -> None:
        self._call(lambda: self._study.set_user_attr(key, value), "set_user_attr")

    def best(self) -> TrialSummary | None:
        from pfp_mlops.domain.study_budget import best

        return best(self.trials())


def _summary(t: Any) -> TrialSummary:
    dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
        else None
    system = dict(t.system_attrs)
    return TrialSummary(t.number, t.state.name, t.value, dict(t.params), dict(t.user_attrs), dur,
                        tuple(system.get("retry_history") or ()),
                        t.datetime_start.timestamp() if t.datetime_start else None, system)


def open_study(url: str, name: str, cfg: SearchConfig, *, max_epochs: int, attempts: int = 5,
               parallel: bool = False) -> Study:
    """Create or load; retried because two processes creating one new SQLite schema at once can collide."""
    for i in range(attempts):
        try:
            return Study(url, name, cfg, max_epochs=max_epochs, parallel=parallel)
        except InfraError:
            if i == attempts - 1:
                raise
            time.sleep(0.5 * (i + 1))
    raise AssertionError("unreachable")


def _pruner(cfg: SearchConfig, max_epochs: int) -> Any:
    import optuna

    warm = cfg.pruner_warmup_epochs
    if cfg.pruner == "median":
        # Startup trials are counted by Trial.should_prune (completed trials of the study, for every pruner).
        return optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=warm)
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warm), max_resource=max_epochs, reduction_factor=3)
    if cfg.pruner == "threshold":
        return optuna.pruners.ThresholdPruner(lower=cfg.pruner_threshold, n_warmup_steps=warm)
    return optuna.pruners.NopPruner()


def _suggest(trial: Any, name: str, p: SearchParam) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(name, list(p.choices or []))
    if p.type == "int":
        return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)  # type: ignore[arg-type]
    return trial.suggest_float(name, float(p.low), float(p.high), step=p.step, log=p.log)  # type: ignore[arg-type]
