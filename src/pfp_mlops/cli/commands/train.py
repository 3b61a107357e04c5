from __future__ import annotations

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt


def train(config: ConfigOpt = None, profile: ProfileOpt = None, json: JsonOpt = False) -> None:
    """Train YOLO on the current split; every run tracked in MLflow; best weights + runs/training_info.json."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.services.train import run_train

        return run_train(inv.ctx)

    def render(r):
        output.kv("train", [("run", r.run_id), ("weights", r.weights), ("epochs", r.epochs),
                            *((f"valid {k}", v) for k, v in r.valid_metrics.items()), ("duration s", r.duration_s)])

    run("train", body, render, json_out=json, config=config, profile=profile)
