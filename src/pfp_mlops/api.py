"""The public Python API: `Project`, for notebooks, the seed's `steps/` scripts and any Python caller.

    from pfp_mlops import Project

    project = Project.open("path/to/project", profile="demo", overrides={"train.epochs": 5})
    manifest = project.split(demo=True)          # SplitManifest
    trained = project.train(trials=1)            # TrainResult
    outcome = project.register()                 # RegisterResult, or Refused when the gate says no
    outcome = project.promote()                  # PromoteResult, or Refused
    outcome = project.validate()                 # ValidateResult: action promoted / rejected / inconclusive / nothing

`Project.open` runs the set-up `pfp <command>` runs (pfp_mlops.session.open_context): settings from the
environment and the project's `.env`, the config profile with the overrides on top, logging to stderr and
`<PFP_HOME>/logs/pfp.log` with secrets scrubbed, and the offline switches (before Ultralytics is imported).

**Outcomes are values, errors are exceptions.** A gate that says no, an inconclusive verdict or a regression that
was rolled back is what the step found out, so it is returned: `validate()` returns the ValidateResult whose
`action` is `rejected` or `inconclusive`, `regression_watch()` the RegressionResult with `action="rolled_back"`,
and a step refused before anything changed (a register or promote gate, the same-split guard, the leakage check)
returns `Refused` with the decision and its reasons. Bad input, an unreachable server and a lost race
(`ConcurrentPromotion`) raise the `pfp_mlops.domain.errors` exceptions, as the CLI's exit codes 1, 2, 3 and 12.
`pfp_mlops.api.outcome_error(result)` gives back the exception the CLI would have raised for an outcome, so a
script can exit with the CLI's code (`pfp_mlops.cli.errors.exit_code_of_outcome`).

**Stability.** Public, and changed only with a deprecation period of one minor release: `Project` and its methods
and properties documented here, `Refused`, `StatusReport`, `outcome_error`, the result types they return
(`pfp_mlops.domain.models`: SplitManifest, TrainResult, RegisterResult, PromoteResult, ValidateResult,
RegressionResult, RollbackResult, PipelineResult, Decision, EvalResult; `ingest()`'s IngestReport; fields may be
added, not removed or renamed) and the exception tree of `pfp_mlops.domain.errors`. Everything else (`services`,
`adapters`, `cli`, `session`, module layout) is internal and may change in any release.

A Project changes the working directory to its folder for the duration of each call (the services resolve
`data/`, `dataset/`, `runs/` and `.pfp/` relative to it, as the CLI does when run there), so use one Project per
thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfp_mlops.outcomes import Refused, StatusReport, as_outcome, outcome_error

if TYPE_CHECKING:
    from pfp_mlops.domain.models import (
        PipelineResult,
        PromoteResult,
        RegisterResult,
        RegressionResult,
        RollbackResult,
        SplitManifest,
        TrainResult,
        ValidateResult,
    )
    from pfp_mlops.ports import RegistryPort
    from pfp_mlops.services.context import Context
    from pfp_mlops.services.ingest.report import IngestReport
    from pfp_mlops.settings import PipelineConfig, Settings

__all__ = ["Project", "Refused", "StatusReport", "outcome_error"]


class Project:
    """One pfp project folder (data/, dataset/, runs/, configs/, .env, .pfp/): every step and report as a method."""

    def __init__(self, root: Path, ctx: Context) -> None:
        """Use `Project.open`; this constructor takes an already built context."""
        self._root = root
        self._ctx = ctx

    # --- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".", *, config: str | os.PathLike[str] | None = None,
             profile: str | None = None, overrides: Mapping[str, Any] | Iterable[str] | None = None,
             registry: RegistryPort | None = None) -> Project:
        """Open the project in `path` with the CLI's set-up.

        `config`: a YAML file (relative paths are relative to `path`; default PFP_CONFIG or configs/<profile>.yaml).
        `profile`: `default`, `demo`, … (default PFP_PROFILE). `overrides`: config changes for this Project, either
        `{"train.epochs": 3}` (values as given) or `["train.epochs=3"]` (values parsed as YAML, like `--set`).
        `registry`: a registry to use instead of the configured MLflow store, e.g.
        `pfp_mlops.adapters.memory_registry.MemoryRegistry()` to try the lifecycle without one.
        Raises ConfigError (a UserError) naming a bad value, key or variable.
        """
        from pfp_mlops.domain.errors import ConfigError
        from pfp_mlops.session import open_context

        root = Path(path).expanduser().resolve()
        if not root.is_dir():
            raise ConfigError(f"project folder not found: {root}")
        with _cwd(root):
            ctx = open_context(config=Path(config) if config is not None else None, profile=profile,
                               overrides=_overrides(overrides), registry=registry)
        return cls(root, ctx)

    @property
    def root(self) -> Path:
        """The project folder."""
        return self._root

    @property
    def settings(self) -> Settings:
        """The settings from the environment and `.env` (secrets as SecretStr)."""
        return self._ctx.settings

    @property
    def config(self) -> PipelineConfig:
        """The effective pipeline config (profile + overrides), validated."""
        return self._ctx.cfg

    @property
    def model_name(self) -> str:
        """The registered model's name (PFP_MODEL_NAME)."""
        return self._ctx.model_name

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking and registry URI this project uses (may hold credentials: do not print it)."""
        return self._ctx.settings.tracking_uri()

    def __repr__(self) -> str:
        return f"Project({str(self._root)!r}, model={self.model_name!r})"

    # --- the steps -------------------------------------------------------------------------------------------
    def demo_data(self, *, n_images: int | None = None, seed: int | None = None) -> Path:
        """Write the synthetic rock/paper/scissors dataset into `paths.data_dir`; returns the CSV's path."""
        from pfp_mlops.demo.synthetic import generate

        d, cfg = self.config.demo, self.config
        with self._inside():
            csv = generate(cfg.paths.data_dir, n_images=n_images or d.n_images, imgsz=d.imgsz,
                           seed=d.seed if seed is None else seed, max_objects=d.max_objects,
                           classes=tuple(cfg.data.classes))
            return Path(csv).resolve()

    def ingest(self, source: str | os.PathLike[str], *, fmt: str = "auto", out: str | os.PathLike[str] | None = None,
               keep_source_splits: bool = False, allow_leaks: bool = False, mode: str = "auto",
               group_regex: str | None = None, keep_crowd: bool = False, force: bool = False,
               workers: int = 0) -> IngestReport:
        """`pfp ingest SOURCE`: read an export (Roboflow, Ultralytics YAML, COCO, CVAT, folders), check it and write
        `paths.data_dir` (or `out`); returns the report (`ingest_report.json`'s content). `mode`: auto (hard links,
        else symlinks, else copies), link or copy. Hard errors in the source raise
        `pfp_mlops.services.ingest.IngestFailed` (a DataError, exit 2 in the CLI) with the report as `.decision`,
        and nothing is written. A relative `source` or `out` is relative to the project folder."""
        from pfp_mlops.services.ingest import run_ingest

        with self._inside():
            return run_ingest(self.config, Path(source), fmt=fmt, out=None if out is None else Path(out),
                              keep_source_splits=keep_source_splits, allow_leaks=allow_leaks, mode=mode,
                              group_regex=group_regex, keep_crowd=keep_crowd, force=force, workers=workers)

    def split(self, *, demo: bool = False) -> SplitManifest:
        """`pfp split`: assign every item to train/valid/test by a stable hash; `demo`: generate data if missing."""
        from pfp_mlops.services.pipeline import ensure_demo_data
        from pfp_mlops.services.split import run_split

        with self._inside():
            if demo:
                ensure_demo_data(self._ctx)
            return run_split(self.config)

    def train(self, *, trials: int | None = None, timeout: float | None = None, epochs: int | None = None,
              device: str | None = None) -> TrainResult:
        """`pfp train`: run (or resume) the Optuna study; the flags override train.search.n_trials, .timeout_s,
        train.epochs and PFP_DEVICE for this call. Raises TrainingFailed when no trial completed."""
        from pfp_mlops.overrides import train_flags
        from pfp_mlops.services.train import run_train
        from pfp_mlops.session import with_changes

        ctx = with_changes(self._ctx, overrides=train_flags(trials=trials, timeout=timeout, epochs=epochs),
                           device=device)
        with self._inside():
            return run_train(ctx)

    def register(self, *, training_info: str | os.PathLike[str] | None = None,
                 check_env: str | None = None) -> RegisterResult | Refused:
        """`pfp register`: TEST evaluation, minimum score, runtime checks, a new version; Refused when a gate says no.

        `check_env`: `uv`, `virtualenv` or `conda` to also predict in an isolated environment (needs an index).
        """
        from pfp_mlops.services.register import run_register

        with self._inside():
            return as_outcome("register", lambda: run_register(
                self._ctx, training_info=Path(training_info) if training_info is not None else None,
                check_env=check_env))

    def promote(self, *, version: int | None = None, allow_split_mismatch: bool = False) -> PromoteResult | Refused:
        """`pfp promote`: the latest candidate (or `version`) through the staging gate to the `staging` alias."""
        from pfp_mlops.services.promote import run_promote

        with self._inside():
            return as_outcome("promote", lambda: run_promote(self._ctx, version=version,
                                                         allow_split_mismatch=allow_split_mismatch))

    def validate(self, *, allow_split_mismatch: bool = False) -> ValidateResult | Refused:
        """`pfp validate`: staging vs production on the same test split; the result's `action` says what happened
        (promoted, rejected, inconclusive, nothing); Refused when a guard stopped the comparison."""
        from pfp_mlops.services.validate import run_validate

        with self._inside():
            return as_outcome("validate", lambda: run_validate(self._ctx, allow_split_mismatch=allow_split_mismatch))

    def regression_watch(self, *, tolerance: float | None = None) -> RegressionResult | Refused:
        """`pfp validate --against previous`: production vs the previous production; rolls back when worse.

        `tolerance` default: gates.validate.regression_tolerance. `action`: kept, rolled_back, inconclusive, nothing.
        """
        from pfp_mlops.domain.errors import UserError
        from pfp_mlops.services.regression import run_regression_watch

        allowed = self.config.gates.validate_.regression_tolerance if tolerance is None else tolerance
        if not 0 <= allowed <= 1:
            raise UserError(f"tolerance must be between 0 and 1 (got {allowed})")
        with self._inside():
            return as_outcome("regression_watch", lambda: run_regression_watch(self._ctx, tolerance=allowed))

    def rollback(self, *, to_version: int | None = None, dry_run: bool = False, force: bool = False,
                 reason: str = "manual rollback") -> RollbackResult:
        """`pfp rollback`: production back to the previous production (from the ledger) or to `to_version`."""
        from pfp_mlops.services.rollback import parse_version, run_rollback

        target = parse_version(str(to_version), "to_version") if to_version is not None else None
        with self._inside():
            return run_rollback(self._ctx, to_version=target, dry_run=dry_run, force=force, reason=reason)

    def run_all(self, *, demo: bool = False, force: bool = False, from_step: str | None = None,
                until: str | None = None, wait_s: float = 10.0) -> PipelineResult:
        """`pfp run-all`: split → train → register → promote → validate, cached; gate outcomes are in the steps
        and in `exit_code` (the CLI's), never raised."""
        from pfp_mlops.cli.errors import exit_code_for
        from pfp_mlops.services.pipeline import STEPS, Selection
        from pfp_mlops.services.pipeline import run_all as service

        sel = Selection(first=from_step or STEPS[0], last=until or STEPS[-1], force=force,
                        rerun_first=from_step is not None)
        with self._inside():
            return service(self._ctx, demo=demo, exit_code_of=exit_code_for, selection=sel, wait_s=wait_s)

    # --- reports ---------------------------------------------------------------------------------------------
    def status(self) -> StatusReport:
        """`pfp status`: versions, aliases, stage tags, test metrics, and drift between aliases and tags."""
        from pfp_mlops.services.status import run_status

        with self._inside():
            return StatusReport.from_dict(run_status(self._ctx))

    def history(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """`pfp history`: the lifecycle ledger, newest first, as the entries `pfp history --json` prints."""
        from pfp_mlops.services.history import run_history

        with self._inside():
            return run_history(self._ctx, limit=limit)

    def repair(self, *, dry_run: bool = False) -> dict[str, Any]:
        """`pfp repair`: set the stage tags from the aliases (the aliases are the truth), recorded in the ledger."""
        from pfp_mlops.services.repair import run_repair

        with self._inside():
            return run_repair(self._ctx, dry_run=dry_run)

    def comparison_picture(self, result: ValidateResult, dest: str | os.PathLike[str] | None = None) -> Path | None:
        """The PNG comparing champion and challenger of a validate decision (its evidence run), downloaded to `dest`
        (default `<PFP_HOME>/evidence/<run id>/`); None when the decision had no champion to compare with."""
        run_id = (result.decision.metrics or {}).get("comparison_run_id")
        if not run_id:
            return None
        from pfp_mlops.services.decision import EVIDENCE_DIR

        with self._inside():
            target = Path(dest) if dest is not None else self._ctx.home / "evidence" / str(run_id)
            target.mkdir(parents=True, exist_ok=True)
            got = self._ctx.registry.download(f"runs:/{run_id}/{EVIDENCE_DIR}/comparison.png", target)
            return Path(got).resolve()

    # --- internals -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _inside(self) -> Iterator[None]:
        with _cwd(self._root):
            yield


def _overrides(values: Mapping[str, Any] | Iterable[str] | None) -> list[Any]:
    from pfp_mlops.overrides import from_mapping, parse_set

    if values is None:
        return []
    if isinstance(values, Mapping):
        return from_mapping(values)
    if isinstance(values, str):
        return parse_set([values])
    return parse_set(list(values))


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)
