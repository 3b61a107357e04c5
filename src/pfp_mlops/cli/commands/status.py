from __future__ import annotations

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt


def status(config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False) -> None:
    """Versions with aliases, stage tag and key metrics; flags drift between aliases and tags."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.status import run_status

        return run_status(inv.ctx)

    def render(r):
        output.table(f"{r['model']} @ {r['tracking_uri']}", ("version", "aliases", "stage", "test mAP50", "recall"),
                     [(v["version"], v["aliases"], v["stage"], v["map50"], v["recall"]) for v in r["versions"]])
        for d in r["drift"]:
            output.console().print(f"[yellow]drift: {d}[/] (run `pfp repair`)")
        for p in r.get("pending", []):
            output.console().print(
                f"[yellow]pending: {p['action']} {p.get('from_version') or '-'} -> {p.get('to_version') or '-'} "
                f"({p.get('outcome')}, {p.get('when')}) did not finish; `pfp repair` will {p['repair_will']} it: "
                f"{p['why']}[/]")

    run("status", body, render, json_out=json, config=config, profile=profile, overrides=set_)
