"""`pfp monitor run|watch|status|label-template`: the production detector on live traffic and delayed labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt

app = typer.Typer(help="Watch production on the prediction log and delayed labels: pass / fail / inconclusive per "
                       "window; roll back on fail (exit 13).", no_args_is_help=True, rich_markup_mode=None)

WindowOpt = Annotated[str | None, typer.Option("--window", help="`1h` (time buckets) or N (every N logged "
                                                                "predictions) [default: monitor.window]")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Only predictions after this: a duration ago (2h) or "
                                                              "an ISO time.")]
ServeUrlOpt = Annotated[str | None, typer.Option("--serve-url", help="After a rollback, confirm this `pfp serve` "
                                                                     "serves the restored version.")]
LogDirOpt = Annotated[Path | None, typer.Option("--log-dir", help="Prediction log folder [default: monitor.log_dir, "
                                                                  "serve's, <PFP_HOME>/predictions]")]
LabelsOpt = Annotated[Path | None, typer.Option("--labels", help="Labels folder (<sha256>.txt, labels.csv) "
                                                                 "[default: monitor.labels_dir, <log dir>/labels]")]


def render_run(r) -> None:
    from pfp_mlops.cli import output

    def delta(w):
        lo, hi = w["delta_ci"] or (None, None)
        return "-" if lo is None else f"{w['delta_map50']:+.4f} [{lo:+.4f}, {hi:+.4f}]"

    rows = [(w["version"], w["step"], w["window"], w["predictions"], w["labelled"], w["map50"], w["previous_map50"],
             delta(w), ", ".join(w["drift_alerts"]) or "-", w["verdict"]) for w in r.windows]
    output.table(f"monitor {r.model} (production v{r.production}): {len(r.windows)} new window(s)",
                 ("version", "step", "window", "preds", "labelled", "mAP50", "prev mAP50", "ΔmAP50 [interval]",
                  "drift", "verdict"), rows)
    lg, lb = r.log, r.labels
    notes = [("log", f"{lg.get('predictions')} predictions in {lg.get('files')} file(s); corrupt {lg.get('corrupt')}, "
                     f"partial {lg.get('partial')}, duplicates {lg.get('duplicates')}"),
             ("labels", f"{lb.get('labelled_images')} labelled; bad {lb.get('bad')}, "
                        f"unknown images {lb.get('unknown_images')}")]
    if lg.get("s3"):
        notes.append(("s3", f"{lg['s3']['uri']}: {lg['s3']['downloaded']} new of {lg['s3']['objects']} objects"))
    notes += [("problem", p) for p in [*lg.get("problems", []), *lb.get("problems", [])]]
    notes += [("unknown version", f"v{v}: {n} predictions skipped (not in the registry)")
              for v, n in r.unknown_versions.items()]
    notes += [("late", f"v{v}: {n} predictions for windows already computed (counted, not used)")
              for v, n in r.late.items()]
    notes += [("waiting", f"v{w['version']} {w['window']}: {w['labelled']}/{w['predictions']} labelled")
              for w in r.waiting]
    notes += [("alert", a["summary"]) for a in r.alerts]
    if r.adopted:
        notes.append(("adopted", f"{r.adopted} window(s) found in MLflow from an interrupted run"))
    if r.rollback:
        notes.append(("rollback", f"v{r.rollback['from_version']} -> v{r.rollback['to_version']}"))
    if r.serving:
        notes.append(("serving", f"{r.serving.get('url')}: ok={r.serving.get('ok')} {r.serving.get('message')}"))
    output.kv("details", notes)


@app.command("run")
def run_cmd(window: WindowOpt = None, since: SinceOpt = None, serve_url: ServeUrlOpt = None,
            log_dir: LogDirOpt = None, labels: LabelsOpt = None, config: ConfigOpt = None,
            set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False) -> None:
    """Compute every closed window not computed yet; roll back on `failure_limit` failing windows (exit 13)."""
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.monitor.run import parse_since, run_monitor

        return run_monitor(inv.ctx, window=window, since=parse_since(since), log_dir=log_dir, labels_dir=labels,
                           serve_url=serve_url)

    run("monitor run", body, render_run, json_out=json, config=config, profile=profile, overrides=set_)


@app.command("watch")
def watch_cmd(every: Annotated[str, typer.Option("--every", help="Interval between runs (30s, 5m, 1h).")] = "5m",
              max_runs: Annotated[int | None, typer.Option("--max-runs", help="Stop after N runs (default: "
                                                                              "forever).")] = None,
              window: WindowOpt = None, since: SinceOpt = None, serve_url: ServeUrlOpt = None,
              log_dir: LogDirOpt = None, labels: LabelsOpt = None, config: ConfigOpt = None,
              set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False) -> None:
    """`monitor run` in a loop, for a service; an unreachable MLflow is retried next time. Exit 13 if it rolled back."""
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.monitor.watch import watch

        return watch(inv.ctx, every=every, max_runs=max_runs, window=window, since=since, log_dir=log_dir,
                     labels_dir=labels, serve_url=serve_url)

    def render(r):
        from pfp_mlops.cli import output

        output.kv("monitor watch", [("runs", r["runs"]), ("windows", r["windows"]), ("rollbacks", r["rollbacks"]),
                                    *(("error", e) for e in r["errors"])])

    run("monitor watch", body, render, json_out=json, config=config, profile=profile, overrides=set_,
        result_code=lambda r: 13 if r["rollbacks"] else 0)


@app.command("status")
def status_cmd(limit: Annotated[int, typer.Option("--limit", help="Windows per version.")] = 10,
               config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None,
               json: JsonOpt = False) -> None:
    """The latest windows of each monitored version (from the state file; MLflow has the full series)."""
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.monitor.views import monitor_status

        return monitor_status(inv.ctx, limit=limit)

    def render(r):
        from pfp_mlops.cli import output

        for v in r["versions"]:
            output.table(f"{r['model']} v{v['version']}: {v['windows']} window(s), fail streak {v['fail_streak']}, "
                         f"inconclusive streak {v['inconclusive_streak']}"
                         + (" (rolled back by the monitor)" if v["rolled_back"] else ""),
                         ("step", "window", "preds", "labelled", "mAP50", "ΔmAP50", "drift", "verdict", "reason"),
                         [(w["step"], w["window"], w["predictions"], w["labelled"], w["map50"], w["delta_map50"],
                           ", ".join(w["drift_alerts"]) or "-", w["verdict"], w["reason"]) for w in v["last"]])
        if not r["versions"]:
            output.console().print(f"no monitoring windows yet ({r['state']})")

    run("monitor status", body, render, json_out=json, config=config, profile=profile, overrides=set_)


@app.command("label-template")
def label_template_cmd(out: Annotated[Path | None, typer.Option("--out", "-o", help="CSV to write (default: "
                                                                                   "stdout).")] = None,
                       log_dir: LogDirOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
                       profile: ProfileOpt = None, json: JsonOpt = False) -> None:
    """The logged images still missing a label (CSV: sha256, request, stored image, label path to write)."""
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.monitor.views import label_template

        return label_template(inv.ctx, out=out, log_dir=log_dir)

    def render(r):
        import sys

        if r["csv"] is not None:
            sys.stdout.write(r["csv"])
        else:
            sys.stderr.write(f"{r['missing']} image(s) without a label -> {r['out']} (labels go to "
                             f"{r['labels_dir']}/<sha256>.txt)\n")

    run("monitor label-template", body, render, json_out=json, config=config, profile=profile, overrides=set_)
