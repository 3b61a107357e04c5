from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt


def demo_data(
    out: Annotated[Path | None, typer.Option("--out", help="Folder to write (default: paths.data_dir).")] = None,
    n_images: Annotated[int | None, typer.Option("--n", min=8, max=100_000, help="Number of images.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False,
) -> None:
    """Generate the built-in synthetic 3-class dataset (rock, paper, scissors): images, labels, dataset_info.csv."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        from pfp_mlops.demo.synthetic import generate

        d = inv.cfg.demo
        target = out or inv.cfg.paths.data_dir
        n = n_images or d.n_images
        csv = generate(target, n_images=n, imgsz=d.imgsz, seed=d.seed if seed is None else seed,
                       max_objects=d.max_objects, classes=tuple(inv.cfg.data.classes))
        return {"csv": str(csv), "images": n, "classes": list(inv.cfg.data.classes)}

    run("demo-data", body, lambda r: output.kv("demo data", r.items()), json_out=json, config=config,
        profile=profile, demo=True, overrides=set_)
