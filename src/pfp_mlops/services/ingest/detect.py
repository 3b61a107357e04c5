"""Which format a source is, decided from its files (never from its name), and the reader for it.

`auto` looks, in order, for: a dataset YAML (`data.yaml`, `dataset.yaml`, or the one YAML at the top with
`names:`) → `roboflow` when it has a `roboflow:` block, else `yolo`; `annotations.xml` → `cvat`; COCO JSON
(`<split>/_annotations.coco.json`, `annotations/*.json`, `*.json`) → `coco`; `images/` + `labels/` → `folders`.
A file given as SOURCE is read by its kind: `.yaml`/`.yml`, `.json`, `.xml`.
"""

from __future__ import annotations

from pathlib import Path

from pfp_mlops.domain.errors import DataError
from pfp_mlops.services.ingest.model import Root, SourceDataset

FORMATS = ("auto", "roboflow", "yolo", "coco", "cvat", "folders")


def _yaml_candidates(source: Path) -> list[Path]:
    if source.is_file():
        return [source] if source.suffix in (".yaml", ".yml") else []
    named = [source / n for n in ("data.yaml", "dataset.yaml", "data.yml") if (source / n).is_file()]
    if named:
        return named[:1]
    import yaml

    out = []
    for p in sorted(source.glob("*.y*ml")):
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and ("train" in data or "names" in data):
            out.append(p)
    return out


def _is_roboflow_yaml(path: Path) -> bool:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # the reader reports it
    return isinstance(data, dict) and isinstance(data.get("roboflow"), dict)


def detect(source: Path) -> str:
    """The format of `source` (auto detection); DataError listing what was looked for when nothing matches."""
    yamls = _yaml_candidates(source)
    if yamls:
        return "roboflow" if _is_roboflow_yaml(yamls[0]) else "yolo"
    if source.is_file():
        if source.suffix == ".json":
            return "coco"
        if source.suffix == ".xml":
            return "cvat"
        hint = "; unpack archives first" if source.suffix in (".zip", ".tar", ".gz", ".tgz") else ""
        raise DataError(f"{source}: unknown format (a file must be a dataset YAML, a COCO .json or a CVAT .xml"
                        f"{hint})")
    if (source / "annotations.xml").is_file():
        return "cvat"
    from pfp_mlops.services.ingest.read_coco import coco_files

    if coco_files(source):
        return "coco"
    if (source / "images").is_dir():
        return "folders"
    raise DataError(f"{source}: unknown format: no data.yaml, annotations.xml, COCO JSON, or images/ folder "
                    "(--format roboflow|yolo|coco|cvat|folders)")


def read_source(source: Path, fmt: str, *, keep_crowd: bool, project_classes: list[str] | None) -> SourceDataset:
    """Detect (when `fmt` is auto) and read. The source root is SOURCE itself (a folder) or its folder (a file):
    nothing outside it is read."""
    if fmt not in FORMATS:
        raise DataError(f"--format: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if not source.exists():
        raise DataError(f"{source}: source not found")
    root = Root(str(source if source.is_dir() else source.parent))
    root.resolve(str(source), "SOURCE")
    # from here on every path is built from the real root, so paths compare by prefix (no realpath per file)
    source = Path(root.path) if source.is_dir() else Path(root.path) / source.name
    chosen = detect(source) if fmt == "auto" else fmt
    if chosen in ("roboflow", "yolo"):
        yamls = _yaml_candidates(source)
        if yamls:
            from pfp_mlops.services.ingest.read_yolo import read_yaml_dataset

            return read_yaml_dataset(yamls[0], root, chosen)
        if chosen == "roboflow":
            from pfp_mlops.services.ingest.read_coco import coco_files, read_coco

            if coco_files(source):
                return read_coco(source, root, keep_crowd=keep_crowd, fmt="roboflow")
        raise DataError(f"{source}: no dataset YAML (data.yaml with train:/val:/names:) for --format {chosen}")
    if chosen == "coco":
        from pfp_mlops.services.ingest.read_coco import read_coco

        return read_coco(source, root, keep_crowd=keep_crowd)
    if chosen == "cvat":
        from pfp_mlops.services.ingest.read_cvat import read_cvat

        xml = source if source.is_file() else source / "annotations.xml"
        if not xml.is_file():
            raise DataError(f"{source}: no annotations.xml (CVAT for images 1.1)")
        return read_cvat(xml, root)
    from pfp_mlops.services.ingest.read_yolo import read_folders

    if not source.is_dir():
        raise DataError(f"{source}: --format folders needs a folder with images/ and labels/")
    return read_folders(source, root, project_classes)
