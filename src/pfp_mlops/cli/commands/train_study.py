"""`pfp train --status` / `--reap` and the worker's summary: the shared study seen from one terminal."""

from __future__ import annotations

from typing import Any


def reap_or_status(*, reap: bool, **common: Any) -> None:
    """`common`: the train command's run() arguments (config, profile, --set, the train flags, --json)."""
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.train_workers import run_reap, run_status

        return run_reap(inv.ctx) if reap else run_status(inv.ctx)

    def render(r):
        if reap:
            from pfp_mlops.cli import output

            output.table(f"reaped trials of study {r.study}", ["trial", "mlflow run", "status", "reason"],
                         [(f["trial"], f["run_id"] or "-", f["status"] or "-", f["reason"]) for f in r.reaped])
            if not r.reaped:
                output.kv("reap", [("study", r.study), ("stale trials", "none")])
            return
        render_status(r.study, r.storage, r.status, extra=[("heartbeat", f"every {r.heartbeat_interval_s}s, stale "
                                                                          f"after {r.heartbeat_grace_s}s")])

    run("train", body, render, **common)


def render_status(study: str, storage: str, st: dict[str, Any], extra: list[tuple[str, Any]] = ()) -> None:
    from pfp_mlops.cli import output

    states = st.get("states") or {}
    best = st.get("best")
    output.kv(f"study {study}", [
        ("storage", storage), ("finished", f"{st.get('finished', 0)}/{st.get('n_trials')}"),
        ("states", ", ".join(f"{k.lower()} {v}" for k, v in sorted(states.items())) or "no trials"),
        ("best", "-" if best is None else f"trial #{best['trial']} valid mAP50 {best['value']:.4f} "
                                          f"({best.get('worker') or '?'})"),
        *extra])
    output.table("workers", ["worker", "trials", "complete", "pruned", "failed", "running", "best"],
                 [(w["worker"], w["trials"], w["COMPLETE"], w["PRUNED"], w["FAIL"],
                   " ".join(f"#{n}" for n in w["running"]) or "-",
                   "-" if w["best_value"] is None else f"{w['best_value']:.4f}") for w in st.get("workers", [])])


def render_worker(r: Any) -> None:
    render_status(r.study, "", r.status, extra=[("this worker", r.worker),
                                                 ("trials run here", " ".join(f"#{n}" for n in r.trials_run) or "-"),
                                                 ("reaped", len(r.reaped)), ("parent run", r.parent_run_id),
                                                 ("duration s", r.duration_s)])
