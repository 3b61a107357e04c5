"""`pfp run-all`: split → train → register → promote → validate through the same service functions.

A gate that says no ends the chain with exit 10 (the rest is skipped); an error ends it with its own code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pfp_mlops.domain.errors import PfpError
from pfp_mlops.domain.models import PipelineResult, StepOutcome
from pfp_mlops.services.context import Context

STEPS = ("split", "train", "register", "promote", "validate")


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


def run_all(ctx: Context, *, demo: bool = False, exit_code_of: Callable[[BaseException], int]) -> PipelineResult:
    from pfp_mlops.services.promote import run_promote
    from pfp_mlops.services.register import run_register
    from pfp_mlops.services.split import run_split
    from pfp_mlops.services.train import run_train
    from pfp_mlops.services.validate import run_validate

    t_start = time.time()
    budget = ctx.cfg.pipeline.budget_s
    outcomes: list[StepOutcome] = []

    def split_step() -> str:
        note = ensure_demo_data(ctx) if demo else None
        m = run_split(ctx.cfg)
        s = f"{m.counts['train']}/{m.counts['valid']}/{m.counts['test']} train/valid/test, fp {m.fingerprint}"
        return f"{note}; {s}" if note else s

    def train_step() -> str:
        r = run_train(ctx, time_budget_s=max(budget - (time.time() - t_start), 1.0))
        return f"valid mAP50 {r.valid_metrics.get('map50', float('nan')):.4f}, {r.epochs} epochs, run {r.run_id[:8]}"

    def register_step() -> str:
        r = run_register(ctx)
        return f"v{r.version}, test mAP50 {r.evaluation.map50:.4f}"

    def promote_step() -> str:
        r = run_promote(ctx)
        return f"v{r.version} -> {r.alias}"

    def validate_step() -> str:
        r = run_validate(ctx)
        return f"{r.action}: production v{r.production}; {r.decision.reasons[0] if r.decision.reasons else ''}"

    steps: list[tuple[str, Callable[[], str]]] = [
        ("split", split_step), ("train", train_step), ("register", register_step), ("promote", promote_step),
        ("validate", validate_step),
    ]
    exit_code = 0
    for name, fn in steps:
        if exit_code:
            outcomes.append(StepOutcome(name, "skipped", 0.0, "an earlier step stopped the chain"))
            continue
        ctx.say(f"▶ {name}")
        t0 = time.time()
        try:
            summary = fn()
            outcomes.append(StepOutcome(name, "ok", round(time.time() - t0, 2), summary))
            ctx.say(f"✔ {name} ({time.time() - t0:.1f}s): {summary}")
        except PfpError as e:
            code = exit_code_of(e)
            status = "gate" if code in (10, 11, 12, 13) else "failed"
            outcomes.append(StepOutcome(name, status, round(time.time() - t0, 2), e.message, code))
            ctx.say(f"✘ {name} ({time.time() - t0:.1f}s): {e.message}")
            exit_code = code
    return PipelineResult(outcomes, exit_code, round(time.time() - t_start, 2))


def summary_rows(result: PipelineResult) -> list[dict[str, Any]]:
    return [o.to_dict() for o in result.steps]
