from __future__ import annotations

from typing import Annotated

import typer

from pfp_mlops.cli.options import AllowSplitMismatchOpt, ConfigOpt, JsonOpt, ProfileOpt, ServeUrlOpt, SetOpt


def decision_rows(m: dict, verdict: str | None) -> list[tuple[str, str]]:
    """How the verdict came about: the final verdict, the mode that decided, the point rule with its bar, the interval
    (and what it had to clear), and what the other interval rule would have said."""
    mode, boot = m.get("decision_mode"), m["bootstrap"]
    need = m.get("required_delta")
    bar = "" if need is None else f" (bar ΔmAP50 ≥ {need:+.4f})"
    interval = f"[{boot['ci_low']:+.4f}, {boot['ci_high']:+.4f}] {boot['confidence']:.0%}"
    if mode == "guarded":
        clear = "clears 0" if boot["ci_low"] > 0 else "includes 0"
        interval += f", must clear 0: {clear}"
    elif mode == "bootstrap":
        interval += f", must clear the bar: {m.get('bootstrap_verdict')}"
    rows = [("verdict", f"{verdict} (decision: {mode}, decided by the {m.get('decided_by', 'rule')})"),
            ("point rule", f"{m.get('point_verdict')}{bar}"), ("interval ΔmAP50", interval)]
    if mode != "bootstrap":
        rows.append(("bootstrap mode", f"would say {m.get('bootstrap_verdict')}"))
    if m.get("n_test_images") is not None:
        rows.append(("test images", str(m["n_test_images"])))
    if m.get("images_needed_estimate") is not None:
        rows.append(("images needed (estimate)", str(m["images_needed_estimate"])))
    return rows


def render_validate(r) -> None:
    """The decision, then champion vs challenger per class with ΔmAP50 and its interval (what the PNG shows)."""
    from pfp_mlops.cli import output

    rows = [("action", r.action), ("challenger", r.challenger), ("champion", r.champion),
            ("production now", r.production)]
    for label, ev in (("challenger", r.challenger_eval), ("champion", r.champion_eval)):
        if ev is not None:
            rows.append((f"{label} mAP50", ev.map50))
    m = r.decision.metrics or {}
    boot = m.get("bootstrap")
    if boot:
        rows += decision_rows(m, r.decision.verdict)
    if m.get("comparison_run_id"):
        rows.append(("evidence run", m["comparison_run_id"]))
    rows += [("reason", x) for x in r.decision.reasons]
    output.kv(f"validate {r.name}", rows)
    c, p = r.challenger_eval, r.champion_eval
    if c is None or p is None:
        return

    def num(x):
        return "-" if x is None or x != x else f"{x:.4f}"

    def diff(a, b):
        return "-" if a is None or b is None or a != a or b != b else f"{a - b:+.4f}"

    table = [(name, num(p.per_class_ap50.get(name)), num(ap), diff(ap, p.per_class_ap50.get(name)))
             for name, ap in c.per_class_ap50.items()]
    overall = diff(c.map50, p.map50)
    if boot:
        overall += f"  [{boot['ci_low']:+.4f}, {boot['ci_high']:+.4f}] {boot['confidence']:.0%}"
    table.append(("mAP50", num(p.map50), num(c.map50), overall))
    if boot and m.get("required_delta") is not None:
        table.append(("required Δ", "", "", f"{m['required_delta']:+.4f}"))
    output.table("AP50 on the test split", ("class", f"production v{r.champion}", f"challenger v{r.challenger}",
                                            "Δ (interval)"), table)


def render_regression(r) -> None:
    from pfp_mlops.cli import output

    rows = [("action", r.action), ("production", r.production), ("previous production", r.previous)]
    for label, ev in (("production", r.production_eval), ("previous", r.previous_eval)):
        if ev is not None:
            rows.append((f"{label} mAP50", ev.map50))
    rows += [("reason", x) for x in r.decision.reasons]
    output.kv(f"regression watch {r.name}", rows)


def validate(
    allow_split_mismatch: AllowSplitMismatchOpt = False,
    against: Annotated[str | None, typer.Option(
        "--against", help="`previous`: regression watch; production vs the previous production on current data, "
                          "automatic rollback (exit 13) when production is worse.")] = None,
    tolerance: Annotated[float | None, typer.Option(
        "--tolerance", help="With --against previous: how much worse (absolute, gate metric) production may be "
                            "[default: gates.validate.regression_tolerance, 0]")] = None,
    serve_url: ServeUrlOpt = None,
    config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False,
) -> None:
    """Evaluate staging and production on the same test split; promote only if the gate is met, else reject."""
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.cli import serving_note
        from pfp_mlops.domain.errors import RegressionRolledBack, UserError

        production = inv.ctx.cfg.registry.production_alias
        from pfp_mlops.services.serving import check_url

        check_url(serve_url)

        if against is not None:
            if against != "previous":
                raise UserError(f"--against must be 'previous' (got {against!r})")
            if tolerance is not None and not 0 <= tolerance <= 1:
                raise UserError(f"--tolerance must be between 0 and 1 (got {tolerance})")
            from pfp_mlops.services.regression import run_regression_watch

            allowed = inv.ctx.cfg.gates.validate_.regression_tolerance if tolerance is None else tolerance
            try:
                return run_regression_watch(inv.ctx, tolerance=allowed)
            except RegressionRolledBack as e:  # the alias moved back: the server should follow, then exit 13
                rolled = getattr(e.result, "rollback", None)
                if rolled is not None:
                    serving_note.confirm(inv, e.result, serve_url=serve_url, version=rolled.to_version,
                                         alias=production)
                raise
        from pfp_mlops.services.validate import run_validate

        r = run_validate(inv.ctx, allow_split_mismatch=allow_split_mismatch)
        if r.action != "promoted":
            return r
        return serving_note.confirm(inv, r, serve_url=serve_url, version=r.production, alias=production)

    def render(r):
        from pfp_mlops.cli import serving_note

        (render_regression if hasattr(r, "previous") else render_validate)(r)
        serving_note.render(r)

    run("validate", body, render, json_out=json, config=config, profile=profile, overrides=set_)
