"""Optuna adapter: one study on an RDB storage (SQLite by default, PostgreSQL to share it between machines).

The only module importing optuna. The service drives the study with ask/tell, so that it decides itself what a
finished trial is (budgets across runs and processes), how a crash or Ctrl-C is recorded, and when to prune:
Optuna's own `optimize` would turn a KeyboardInterrupt into a FAIL behind the caller's back.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pfp_mlops.domain.errors import ConfigError, InfraError, PfpError
from pfp_mlops.settings import SearchConfig, SearchParam

log = logging.getLogger("pfp.tuner")

COMPLETE, PRUNED, FAIL, RUNNING = "COMPLETE", "PRUNED", "FAIL", "RUNNING"


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
        if any(k in name for k in ("sqlalchemy", "psycopg", "sqlite3", "pymysql")) or isinstance(e, OSError):
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


class Trial:
    """One running trial: its sampled params, `report` per epoch, `should_prune`."""

    def __init__(self, study: Study, trial: Any, params: dict[str, Any]) -> None:
        self._study = study
        self._trial = trial
        self.number: int = trial.number
        self.params = params
        self._complete_at_start: int | None = None

    def set_attr(self, key: str, value: Any) -> None:
        with translate_errors(self._study.url):
            self._trial.set_user_attr(key, value)

    def report(self, value: float, step: int) -> None:
        """The intermediate value the pruner judges (not stored without a pruner: a commit per epoch for nothing)."""
        if value is None or math.isnan(value) or self._study.pruner_name == "none":
            return
        with translate_errors(self._study.url):
            self._trial.report(float(value), step)

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
        with translate_errors(st.url):
            return bool(self._trial.should_prune())


class Study:
    """A maximising Optuna study of VALID mAP50, created or loaded by name."""

    def __init__(self, url: str, name: str, cfg: SearchConfig, *, max_epochs: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.url = url
        self.name = name
        self.pruner_name = cfg.pruner
        self.warmup_epochs = cfg.pruner_warmup_epochs
        self.startup_trials = cfg.pruner_startup_trials
        self._space = cfg.space
        sampler = optuna.samplers.TPESampler(seed=cfg.sampler_seed, n_startup_trials=min(10, max(cfg.n_trials // 3, 1)))
        pruner = _pruner(cfg, max_epochs)
        with translate_errors(url):
            storage = _storage(url)
            self._study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner,
                                              direction="maximize", load_if_exists=True)

    def trials(self) -> list[TrialSummary]:
        with translate_errors(self.url):
            raw = self._study.get_trials(deepcopy=False)
        out = []
        for t in raw:
            dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
                else None
            out.append(TrialSummary(t.number, t.state.name, t.value, dict(t.params), dict(t.user_attrs), dur))
        return out

    def count(self, *states: str) -> int:
        import optuna

        wanted = tuple(optuna.trial.TrialState[s] for s in states)
        with translate_errors(self.url):
            return len(self._study.get_trials(deepcopy=False, states=wanted))

    def ask(self, *, baseline: bool) -> Trial:
        """A new trial: the baseline samples nothing (train.hyperparameters as configured), the others the space."""
        with translate_errors(self.url):
            t = self._study.ask()
            params = {} if baseline else {k: _suggest(t, k, p) for k, p in self._space.items()}
            if baseline:
                t.set_user_attr("baseline", True)
        return Trial(self, t, params)

    def tell(self, trial: Trial, state: str, value: float | None = None) -> None:
        import optuna

        st = optuna.trial.TrialState[state]
        with translate_errors(self.url):
            if st == optuna.trial.TrialState.COMPLETE:
                self._study.tell(trial._trial, float(value), state=st, skip_if_finished=True)  # type: ignore[arg-type]
            else:
                self._study.tell(trial._trial, state=st, skip_if_finished=True)

    def best(self) -> TrialSummary | None:
        done = [t for t in self.trials() if t.state == COMPLETE and t.value is not None]
        return max(done, key=lambda t: (t.value, -t.number)) if done else None


def open_study(url: str, name: str, cfg: SearchConfig, *, max_epochs: int, attempts: int = 5) -> Study:
    """Create or load; retried because two processes creating one new SQLite schema at once can collide."""
    for i in range(attempts):
        try:
            return Study(url, name, cfg, max_epochs=max_epochs)
        except InfraError:
            if i == attempts - 1:
                raise
            time.sleep(0.5 * (i + 1))
    raise AssertionError("unreachable")


def _storage(url: str) -> Any:
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Several processes on one file: wait for the lock instead of failing after SQLite's default 5 s.
        kwargs = {"connect_args": {"timeout": 120}}
    else:
        kwargs = {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


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
