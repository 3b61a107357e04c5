from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt

WorkerOpt = Annotated[bool, typer.Option("--worker", help="Join the shared study (PFP_OPTUNA_STORAGE) and run trials "
                                         "until it has n_trials finished ones; no best.pt: `pfp train` finishes.")]
ReapOpt = Annotated[bool, typer.Option("--reap", help="Fail the study's stale trials (no heartbeat for the grace "
                                       "period) and end their MLflow runs FAILED, then exit.")]
StatusOpt = Annotated[bool, typer.Option("--status", help="Print the study: trials by state, per worker, best so "
                                         "far; then exit.")]


def train(
    trials: Annotated[int | None, typer.Option("--trials", metavar="N",
                                               help="Trials of the study (= train.search.n_trials); a worker stops "
                                                    "when the study has that many.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", metavar="SECONDS",
                                                  help="Wall-clock budget (= train.search.timeout_s).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", metavar="N", help="Epochs (= train.epochs).")] = None,
    device: Annotated[str | None, typer.Option("--device", metavar="D",
                                               help="cpu, auto, 0 or 0,1 (replaces PFP_DEVICE).")] = None,
    worker: WorkerOpt = False, reap: ReapOpt = False, status: StatusOpt = False,
    config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False,
) -> None:
    """Run (or resume) the Optuna study on the VALID split; every trial an MLflow child run; best weights +
    runs/training_info.json. With --worker, one of several processes sharing the study."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run
    from pfp_mlops.overrides import train_flags

    if sum((worker, reap, status)) > 1:
        from pfp_mlops.cli.runner import usage_error

        raise typer.Exit(usage_error(typer.BadParameter("--worker, --reap and --status exclude each other"),
                                     sys.argv[1:]))
    common = {"json_out": json, "config": config, "profile": profile, "overrides": set_,
              "flags": train_flags(trials=trials, timeout=timeout, epochs=epochs), "device": device}
    if reap or status:
        from pfp_mlops.cli.commands.train_study import reap_or_status

        return reap_or_status(reap=reap, **common)

    def body(inv):
        from pfp_mlops.services.train import run_train
        from pfp_mlops.services.train_workers import run_worker

        call = (lambda: run_worker(inv.ctx)) if worker else (lambda: run_train(inv.ctx))
        if json or not sys.stderr.isatty():
            return call()  # plain log lines (CI, pipes)
        with LiveTrainDisplay() as display:
            inv.ctx.progress = display.message
            inv.ctx.extra["train_progress"] = display.update
            return call()

    def render(r):
        if worker:
            from pfp_mlops.cli.commands.train_study import render_worker

            return render_worker(r)
        st = r.study or {}
        output.kv("train", [("run", r.run_id), ("weights", r.weights), ("study", st.get("name")),
                            ("best trial", st.get("best_trial")),
                            ("trials", f"{st.get('complete', 0)} complete, {st.get('pruned', 0)} pruned, "
                                       f"{st.get('fail', 0)} failed"),
                            *((f"best {k}", v) for k, v in (st.get("best_params") or {}).items()),
                            ("epochs", r.epochs), *((f"valid {k}", v) for k, v in r.valid_metrics.items()),
                            ("duration s", r.duration_s)])

    run("train", body, render, **common)


class LiveTrainDisplay:
    """A rich live panel on stderr: trial i/N, epoch, current and best VALID mAP50, pruned/failed, time."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        # Bound to the real stderr now: Ultralytics' output is swallowed by redirecting sys.stderr during training.
        self.console = Console(file=sys.stderr, highlight=False)
        self.snapshot: Any = None
        self.live = Live(self._render(), console=self.console, refresh_per_second=2, transient=True)

    def __enter__(self) -> LiveTrainDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def message(self, text: str) -> None:
        self.console.print(text)

    def update(self, p: Any) -> None:
        self.snapshot = p
        self.live.update(self._render())

    def _render(self) -> Any:
        from rich.table import Table

        t = Table.grid(padding=(0, 2))
        p = self.snapshot
        if p is None:
            t.add_row("[bold]pfp train[/]", "opening the study…")
            return t

        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.4f}"

        from pfp_mlops.services.train_progress import _hms

        left = "-" if p.remaining_s is None else _hms(p.remaining_s)
        t.add_row("[bold]study[/]", p.study)
        t.add_row("[bold]trial[/]", f"{p.trial}/{p.n_trials}" + (f"  (#{p.trial_number})" if p.trial_number is not None
                                                                   else ""))
        t.add_row("[bold]epoch[/]", f"{p.epoch}/{p.epochs}" if p.epochs else "-")
        t.add_row("[bold]valid mAP50[/]", f"current {f(p.current_map50)}   best {f(p.best_map50)}")
        t.add_row("[bold]trials[/]", f"{p.complete} complete, {p.pruned} pruned, {p.failed} failed")
        t.add_row("[bold]time[/]", f"elapsed {_hms(p.elapsed_s)}   budget left {left}")
        return t
