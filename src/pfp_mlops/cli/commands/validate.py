from __future__ import annotations

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt


def render_validate(r) -> None:
    from pfp_mlops.cli import output

    rows = [("action", r.action), ("challenger", r.challenger), ("champion", r.champion),
            ("production now", r.production)]
    for label, ev in (("challenger", r.challenger_eval), ("champion", r.champion_eval)):
        if ev is not None:
            rows.append((f"{label} mAP50", ev.map50))
    rows += [("reason", x) for x in r.decision.reasons]
    output.kv(f"validate {r.name}", rows)


def validate(config: ConfigOpt = None, profile: ProfileOpt = None, json: JsonOpt = False) -> None:
    """Evaluate staging and production on the same test split; promote only if the gate is met, else reject."""
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.validate import run_validate

        return run_validate(inv.ctx)

    run("validate", body, render_validate, json_out=json, config=config, profile=profile)
