from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pfp_mlops.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt


def ingest(
    source: Annotated[Path, typer.Argument(help="The export: a folder, a dataset YAML, a COCO .json or a CVAT .xml.")],
    fmt: Annotated[str, typer.Option("--format", help="auto, roboflow, yolo, coco, cvat or folders.")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", help="Data folder to write (default: paths.data_dir).")] = None,
    keep_source_splits: Annotated[bool, typer.Option(
        "--keep-source-splits", help="Keep the export's train/valid/test; groups straddling them are leaks (exit 2)."
    )] = False,
    allow_leaks: Annotated[bool, typer.Option(
        "--allow-leaks", help="With --keep-source-splits: leaks are warnings.")] = False,
    link: Annotated[bool, typer.Option("--link", help="Hard links or symlinks only (error if neither works).")] = False,
    copy: Annotated[bool, typer.Option("--copy", help="Copy the images instead of linking them.")] = False,
    group_regex: Annotated[str | None, typer.Option(
        "--group-regex", help="Images whose paths give the same match (first group) share a group, e.g. '(.+)_f\\d+'."
    )] = None,
    keep_crowd: Annotated[bool, typer.Option("--keep-crowd", help="COCO: keep iscrowd annotations as boxes.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a data folder that already holds files.")] = False,
    workers: Annotated[int, typer.Option(
        "--workers", help="Processes that read, hash and link the images (0: one per idle CPU, at most 8; serial below "
                          "4,000 images).")] = 0,
    config: ConfigOpt = None, set_: SetOpt = None, profile: ProfileOpt = None, json: JsonOpt = False,
) -> None:
    """Bring a dataset export in (Roboflow, Ultralytics YAML, COCO, CVAT, folders): checked, grouped, never modified."""
    from pfp_mlops.cli import output
    from pfp_mlops.cli.runner import run

    def body(inv):
        import logging

        from pfp_mlops.domain.errors import UserError
        from pfp_mlops.services.ingest import run_ingest

        if link and copy:
            raise UserError("--link and --copy exclude each other")
        return run_ingest(inv.cfg, source, fmt=fmt, out=out, keep_source_splits=keep_source_splits,
                          allow_leaks=allow_leaks, mode="link" if link else "copy" if copy else "auto",
                          group_regex=group_regex, keep_crowd=keep_crowd, force=force, workers=workers,
                          say=logging.getLogger("pfp").debug)  # stderr keeps to one line on errors

    def render(r):
        con = output.console()
        con.print(f"detected [bold]{r.format}[/] ({r.detected_by}) at {r.source['root']}")
        for split, paths in r.source["roots"].items():
            con.print(f"  {split}: {', '.join(paths)}")
        rows = [(s, c["images"], c["boxes"], c["without_labels"], *(r.class_counts.get(s, {}).get(k, 0)
                                                                     for k in r.classes))
                for s, c in r.counts["per_split"].items()]
        output.table(f"ingest → {r.out} ({r.split_policy} splits)", ("split", "images", "boxes", "unlabelled",
                                                                      *r.classes), rows)
        g = r.groups
        con.print(f"groups: {g['multi_image_groups']} with several images ({g['images_in_multi_image_groups']} "
                  f"images); duplicates: {g['duplicates']['within_split']} within a split, "
                  f"{g['duplicates']['across_splits']} across splits; leaks: {len(g['leaks'])}")
        for title, items, colour in (("errors", r.errors, "red"), ("warnings", r.warnings, "yellow")):
            for kind, v in items.items():
                con.print(f"[{colour}]{title[:-1]}[/] {kind} ({v['count']}): " + "; ".join(v["examples"][:5])
                          + (" …" if v["count"] > 5 else ""))
        if r.ok:
            con.print(f"written ({r.link_mode}); dataset digest {r.source['dataset_digest'][:16]}")
            for step in r.next_steps:
                con.print(f"next: {step}")

    run("ingest", body, render, json_out=json, config=config, profile=profile, overrides=set_)
