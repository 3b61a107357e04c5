"""`pfp run-all`: split → train → register → promote → validate through the same service functions, cached.

Each step has a fingerprint of its inputs: the data folder (split), the config sections it reads, and the result of
the step before it (split fingerprint → training run → registered version → staged version). After a step ends,
`<PFP_HOME>/pipeline_state.json` records that fingerprint, the step's result and status. The next `run-all` skips a
step whose fingerprint is unchanged and whose outputs are still on disk, and runs it otherwise; a step that ran
hands a new result to the next one, which then runs too (as `dvc repro` does: a re-split that yields the same split
fingerprint does not retrain). Gate decisions (exit 10, 11, 13) are results: same inputs, same decision, so they
are cached like successes and the chain stops there again with the same exit code. Failures (exit 1, 2, 3, 12,
Ctrl-C) are not: the next run resumes at the failed step.

What the cache cannot see: changes made in the registry by other commands (a rollback, a manual alias move). A
no-op `run-all` does not re-promote a rolled-back model; `--from validate` or `--force` re-decides.

A no-op run reads small files only: no torch, ultralytics or mlflow import (tested in a subprocess).
An exclusive lock (`<PFP_HOME>/run-all.lock`) keeps two `run-all` in one project from interleaving their writes
to the split files; the second one waits up to `wait_s` seconds, then stops with exit 2 naming the holder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pfp_mlops.domain.errors import PfpError, UserError
from pfp_mlops.domain.models import PipelineResult, StepOutcome
from pfp_mlops.fsutil import atomic_write_json
from pfp_mlops.services.context import Context
from pfp_mlops.uris import public_uri

STEPS = ("split", "train", "register", "promote", "validate")
STATE_FILE = "pipeline_state.json"
LOCK_FILE = "run-all.lock"
STATE_VERSION = 1
# Exit codes that are decisions rather than failures: cached like a success.
DECISION_CODES = frozenset({10, 11, 13})


def ensure_demo_data(ctx: Context) -> str | None:
    """With --demo and no dataset yet, generate the synthetic one; returns a summary or None."""
    from pfp_mlops.services.split import csv_path

    if csv_path(ctx.cfg).is_file():
        return None
    from pfp_mlops.demo.synthetic import generate

    d = ctx.cfg.demo
    generate(ctx.cfg.paths.data_dir, n_images=d.n_images, imgsz=d.imgsz, seed=d.seed, max_objects=d.max_objects,
             classes=tuple(ctx.cfg.data.classes))
    return f"generated {d.n_images} demo images in {ctx.cfg.paths.data_dir}/"


# ---------------------------------------------------------------------------------------------------------------
# fingerprints
# ---------------------------------------------------------------------------------------------------------------


def digest(value: Any) -> str:
    """A stable short hash of JSON-able data."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def data_fingerprint(data_dir: Path) -> str:
    """Every file under the data folder by (path, size, mtime): cheap enough for every run, like DVC's state cache.

    A touched but unchanged file only re-runs the split (seconds); the split fingerprint, which hashes contents,
    decides whether anything downstream runs. Files `.dvcignore` leaves out (Ultralytics' labels.cache) are left out.
    """
    from pfp_mlops.adapters.dvc import ignore_patterns, is_ignored

    if not data_dir.is_dir():
        return "missing"
    patterns = ignore_patterns()
    entries = []
    for root, dirs, files in os.walk(data_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.startswith("."):
                continue
            p = Path(root) / f
            rel = p.relative_to(data_dir).as_posix()
            if is_ignored(rel, patterns):
                continue
            st = p.stat()
            entries.append((rel, st.st_size, st.st_mtime_ns))
    return digest(entries)


@dataclass(frozen=True)
class Selection:
    """Which steps run-all may run, and which it must run."""

    first: str = STEPS[0]
    last: str = STEPS[-1]
    force: bool = False
    rerun_first: bool = False  # --from STEP given: STEP and what follows rerun (even --from split)

    def __post_init__(self) -> None:
        for s in (self.first, self.last):
            if s not in STEPS:
                raise UserError(f"unknown step {s!r}; steps: {', '.join(STEPS)}")
        if STEPS.index(self.first) > STEPS.index(self.last):
            raise UserError(f"--from {self.first} comes after --until {self.last}")

    def selected(self, step: str) -> bool:
        return STEPS.index(self.first) <= STEPS.index(step) <= STEPS.index(self.last)

    def forced(self, step: str) -> bool:
        """--force reruns every selected step; --from STEP reruns STEP and what follows it."""
        return self.selected(step) and (self.force or self.rerun_first)


# ---------------------------------------------------------------------------------------------------------------
# state and lock
# ---------------------------------------------------------------------------------------------------------------


def state_path(ctx: Context) -> Path:
    return ctx.home / STATE_FILE


def read_state(path: Path) -> dict[str, Any]:
    """The recorded steps; an unreadable or foreign state means nothing is cached (never an error)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION or not isinstance(data.get("steps"), dict):
        return {}
    return data["steps"]


def write_state(path: Path, steps: dict[str, Any]) -> None:
    """Atomic (write + rename): an interrupted run never leaves a half-written state."""
    atomic_write_json(path, {"version": STATE_VERSION, "steps": steps}, indent=1, sort_keys=True)


@contextlib.contextmanager
def project_lock(home: Path, *, wait_s: float) -> Iterator[None]:
    """One run-all per project state folder at a time; waits up to wait_s, then UserError (exit 2) naming the holder."""
    import fcntl

    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_FILE
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
    try:
        deadline = time.monotonic() + max(wait_s, 0.0)
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "unknown process"
                    raise UserError(
                        f"another `pfp run-all` is running in this project ({holder}; lock {path}); "
                        "wait for it to finish or use --wait SECONDS"
                    ) from None
                time.sleep(0.1)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


# ---------------------------------------------------------------------------------------------------------------
# the steps
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    inputs: Callable[[], Any]  # what the step reads; hashed into its fingerprint
    run: Callable[[], tuple[str, Any]]  # (summary, result handed to the next step)
    outputs_present: Callable[[Any], bool] = lambda _result: True  # are the recorded outputs still on disk?


def _steps(ctx: Context, results: dict[str, Any], *, t_start: float) -> list[Step]:
    cfg, settings = ctx.cfg, ctx.settings
    budget = cfg.pipeline.budget_s
    # credentials dropped, not masked: the form these fingerprints have always hashed
    registry_target = {"tracking_uri": public_uri(settings.tracking_uri(), mask=""), "model_name": ctx.model_name,
                       "registry": cfg.section("registry")}

    def split_inputs() -> Any:
        return {"data": data_fingerprint(cfg.paths.data_dir), "split": cfg.section("split"),
                "data_cfg": cfg.section("data"), "paths": cfg.section("paths")}

    def split_run() -> tuple[str, Any]:
        from pfp_mlops.services.split import run_split

        m = run_split(cfg)
        return f"{m.counts['train']}/{m.counts['valid']}/{m.counts['test']} train/valid/test, fp {m.fingerprint}", {
            "fingerprint": m.fingerprint}

    def split_present(result: Any) -> bool:
        from pfp_mlops.services.split import read_manifest

        try:
            manifest = read_manifest(cfg.paths.dataset_dir)
        except UserError:  # damaged: not cached, the split runs again
            return False
        if manifest is None:
            return False
        files = [Path(p) for p in manifest.list_files.values()] + [Path(manifest.data_yaml)]
        return manifest.fingerprint == (result or {}).get("fingerprint") and all(f.is_file() for f in files)

    def train_inputs() -> Any:
        return {"split": results.get("split"), "train": cfg.section("train"), "device": settings.device,
                "runs_dir": str(cfg.paths.runs_dir), "model_name": ctx.model_name}

    def train_run() -> tuple[str, Any]:
        from pfp_mlops.services.train import run_train

        r = run_train(ctx, time_budget_s=max(budget - (time.time() - t_start), 1.0))
        summary = f"valid mAP50 {r.valid_metrics.get('map50', float('nan')):.4f}, {r.epochs} epochs, run {r.run_id[:8]}"
        return summary, {"run_id": r.run_id}

    def train_present(result: Any) -> bool:
        from pfp_mlops.services.train import TRAINING_INFO

        try:
            info = json.loads((cfg.paths.runs_dir / TRAINING_INFO).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        return info.get("run_id") == (result or {}).get("run_id") and Path(info.get("weights", "")).is_file()

    def register_inputs() -> Any:
        return {"train": results.get("train"), "evaluation": cfg.section("evaluation"),
                "gate": cfg.gates.register_.model_dump(mode="json"), "runtime": settings.production_runtime,
                **registry_target}

    def register_run() -> tuple[str, Any]:
        from pfp_mlops.services.register import run_register

        r = run_register(ctx)
        return f"v{r.version}, test mAP50 {r.evaluation.map50:.4f}", {"version": r.version}

    def promote_inputs() -> Any:
        return {"register": results.get("register"), "gate": cfg.gates.promote.model_dump(mode="json"),
                "evaluation": cfg.section("evaluation"), **registry_target}

    def promote_run() -> tuple[str, Any]:
        from pfp_mlops.services.promote import run_promote

        r = run_promote(ctx)
        return f"v{r.version} -> {r.alias}", {"version": r.version, "alias": r.alias}

    def validate_inputs() -> Any:
        return {"promote": results.get("promote"), "split": results.get("split"),
                "gate": cfg.gates.validate_.model_dump(mode="json"), "evaluation": cfg.section("evaluation"),
                "promote_gate": cfg.gates.promote.model_dump(mode="json"), **registry_target}

    def validate_run() -> tuple[str, Any]:
        from pfp_mlops.services.validate import run_validate

        r = run_validate(ctx)
        reason = r.decision.reasons[0] if r.decision.reasons else ""
        return f"{r.action}: production v{r.production}; {reason}", {"action": r.action, "production": r.production}

    return [
        Step("split", split_inputs, split_run, split_present),
        Step("train", train_inputs, train_run, train_present),
        Step("register", register_inputs, register_run),
        Step("promote", promote_inputs, promote_run),
        Step("validate", validate_inputs, validate_run),
    ]


def run_all(
    ctx: Context,
    *,
    demo: bool = False,
    exit_code_of: Callable[[BaseException], int],
    selection: Selection | None = None,
    wait_s: float = 10.0,
) -> PipelineResult:
    sel = selection or Selection()
    with project_lock(ctx.home, wait_s=wait_s):
        return _run_locked(ctx, demo=demo, exit_code_of=exit_code_of, sel=sel)


def _run_locked(ctx: Context, *, demo: bool, exit_code_of: Callable[[BaseException], int],
                sel: Selection) -> PipelineResult:
    t_start = time.time()
    spath = state_path(ctx)
    state = read_state(spath)
    # Results of the recorded steps: a step that is skipped still hands its recorded result downstream.
    results: dict[str, Any] = {name: rec.get("result") for name, rec in state.items() if isinstance(rec, dict)}
    outcomes: list[StepOutcome] = []
    demo_note = ensure_demo_data(ctx) if demo and sel.selected("split") else None
    if demo_note:
        ctx.say(demo_note)
    exit_code = 0
    stopped = ""
    for step in _steps(ctx, results, t_start=t_start):
        name = step.name
        if stopped:
            outcomes.append(StepOutcome(name, "skipped", 0.0, stopped))
            continue
        if not sel.selected(name):
            where = f"before --from {sel.first}" if STEPS.index(name) < STEPS.index(sel.first) else (
                f"after --until {sel.last}")
            outcomes.append(StepOutcome(name, "skipped", 0.0, f"not selected ({where})"))
            continue
        fingerprint = digest(step.inputs())
        rec = state.get(name) if isinstance(state.get(name), dict) else None
        cached = (
            not sel.forced(name)
            and rec is not None
            and rec.get("inputs") == fingerprint
            and rec.get("status") in ("ok", "gate")
            and step.outputs_present(rec.get("result"))
        )
        if cached:
            code = int(rec.get("exit_code", 0))
            summary = f"unchanged since {rec.get('finished_at', '?')}: {rec.get('summary', '')}"
            ctx.say(f"↷ {name}: skipped, inputs unchanged ({rec.get('summary', '')})")
            outcomes.append(StepOutcome(name, "cached", 0.0, summary, code))
            if code:
                exit_code = code
                stopped = f"{name} stopped the chain (cached decision, exit {code})"
            continue

        ctx.say(f"▶ {name}")
        t0 = time.time()
        record: dict[str, Any] = {"inputs": fingerprint, "started_at": _now()}
        try:
            summary, result = step.run()
            record |= {"status": "ok", "exit_code": 0, "summary": summary, "result": result}
            outcomes.append(StepOutcome(name, "ok", round(time.time() - t0, 2), summary))
            ctx.say(f"✔ {name} ({time.time() - t0:.1f}s): {summary}")
        except (PfpError, KeyboardInterrupt) as e:
            code = exit_code_of(e)
            message = getattr(e, "message", None) or "interrupted"
            decision = code in DECISION_CODES
            status = "gate" if code in (10, 11, 12, 13) else "failed"
            # A decision's result is the decision itself: downstream steps see it change when it changes.
            record |= {"status": "gate" if decision else "failed", "exit_code": code, "summary": message,
                       "result": {"decision": code, "message": message} if decision else None}
            outcomes.append(StepOutcome(name, status, round(time.time() - t0, 2), message, code))
            ctx.say(f"✘ {name} ({time.time() - t0:.1f}s): {message}")
            exit_code = code
            stopped = "an earlier step stopped the chain"
            if isinstance(e, KeyboardInterrupt):
                _record(spath, state, name, record, results)
                raise
        _record(spath, state, name, record, results)
    return PipelineResult(outcomes, exit_code, round(time.time() - t_start, 2))


def _record(path: Path, state: dict[str, Any], name: str, record: dict[str, Any], results: dict[str, Any]) -> None:
    record["finished_at"] = _now()
    state[name] = record
    results[name] = record.get("result")
    write_state(path, state)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def summary_rows(result: PipelineResult) -> list[dict[str, Any]]:
    return [o.to_dict() for o in result.steps]
