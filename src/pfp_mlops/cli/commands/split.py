from __future__ import annotations

from pfp_mlops.cli.options import ConfigOpt, DemoOpt, JsonOpt, ProfileOpt, SetOpt


def split(demo: DemoOpt = False, config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None,
          json: JsonOpt = False) -> None:
    """Assign each item of dataset_info.csv to train/valid/test by a stable hash; write lists, data.yaml, manifest."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.pipeline import ensure_demo_data
        from pfp_mlops.services.split import run_split

        if demo:
            ensure_demo_data(inv.ctx)
        return run_split(inv.cfg)

    def render(m):
        classes = list(next(iter(m.class_counts.values())).keys())
        rows = [(s, m.counts[s], *(m.class_counts[s][c] for c in classes)) for s in m.counts]
        output.table(f"split {m.fingerprint}", ("split", "images", *classes), rows)
        if m.moved:
            output.console().print(f"[yellow]{m.moved} items changed split since the previous manifest[/]")

    run("split", body, render, json_out=json, config=config, profile=profile, demo=demo, overrides=set_)
