"""Dataset exports that look like the real ones, drawn at test time with the synthetic generator (tiny PNGs).

- `roboflow_yolo`: Roboflow's YOLO export: `data.yaml` with `../train/images` paths, `nc`, `names` and a `roboflow:`
  block; `train|valid|test/{images,labels}`; every file named `<stem>_png.rf.<hash>.png`; two augmented (flipped)
  copies of each train photo, as Roboflow augments the train split only.
- `roboflow_coco`: Roboflow's COCO export: `<split>/_annotations.coco.json` beside the images, an unannotated root
  category (id 0, named after the project), one `iscrowd` annotation and one zero-area box.
- `ultralytics_lists`: an Ultralytics dataset YAML with `path: .`, `.txt` image lists (`./images/…`) and `names` as
  a dict, `images/{train,val}` + `labels/{train,val}`.
- `cvat_project`: CVAT for images 1.1, project export: `annotations.xml` with `<meta><project><labels>`, images with
  `subset="Train"|"Validation"`, files under `images/<subset>/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import yaml
from PIL import Image

from pfp_mlops.demo.synthetic import CLASSES, generate


def _draw(tmp: Path, n: int, seed: int, imgsz: int) -> list[tuple[Path, list[list[float]]]]:
    gen = tmp / f"_gen-{seed}-{n}"
    if not gen.exists():
        generate(gen, n_images=n, imgsz=imgsz, seed=seed)
    out = []
    for i in range(n):
        rows = [[float(v) for v in ln.split()] for ln in (gen / "labels" / f"img_{i:06d}.txt").read_text().splitlines()
                if ln.strip()]
        out.append((gen / "images" / f"img_{i:06d}.png", rows))
    return out


def _rows(rows: list[list[float]]) -> str:
    return "".join(f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in rows)


def _rf(stem: str, salt: str) -> str:
    return f"{stem}_png.rf.{hashlib.md5((stem + salt).encode()).hexdigest()}.png"


def _flip(src: Path, dst: Path) -> None:
    with Image.open(src) as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(dst)


def roboflow_yolo(tmp: Path, *, n: int = 18, imgsz: int = 64, leak: bool = False) -> Path:
    """12 train photos (+2 flipped copies each), 3 valid, 3 test. `leak`: a flipped copy of test photo 0 in train."""
    root = tmp / "rf-yolo"
    drawn = _draw(tmp, n, 0, imgsz)
    n_train, n_valid = n * 2 // 3, n // 6
    for i, (img, rows) in enumerate(drawn):
        split = "train" if i < n_train else "valid" if i < n_train + n_valid else "test"
        stem = f"photo{i:03d}"
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        name = _rf(stem, "orig")
        shutil.copyfile(img, root / split / "images" / name)
        (root / split / "labels" / name.replace(".png", ".txt")).write_text(_rows(rows))
        copies = 2 if split == "train" else (1 if leak and split == "test" and i == n_train + n_valid else 0)
        for k in range(copies):
            aug = _rf(stem, f"aug{k}")
            flipped = [[r[0], 1 - r[1], r[2], r[3], r[4]] for r in rows]
            target = "train"
            _flip(img, root / target / "images" / aug) if k % 2 == 0 else shutil.copyfile(
                img, root / target / "images" / aug)
            (root / target / "labels" / aug.replace(".png", ".txt")).write_text(
                _rows(flipped if k % 2 == 0 else rows))
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\n"
        f"nc: {len(CLASSES)}\nnames: {json.dumps(list(CLASSES))}\n\n"
        "roboflow:\n  workspace: pfp-tests\n  project: shapes\n  version: 3\n  license: CC BY 4.0\n"
        "  url: https://universe.roboflow.com/pfp-tests/shapes/dataset/3\n")
    (root / "README.roboflow.txt").write_text("Exported via roboflow.com (test fixture)\n")
    return root


def roboflow_coco(tmp: Path, *, n: int = 18, imgsz: int = 64) -> Path:
    root = tmp / "rf-coco"
    drawn = _draw(tmp, n, 1, imgsz)
    cats = [{"id": 0, "name": "shapes", "supercategory": "none"}] + [
        {"id": i + 1, "name": c, "supercategory": "shapes"} for i, c in enumerate(CLASSES)]
    per_split: dict[str, dict] = {}
    ann_id = 0
    for i, (img, rows) in enumerate(drawn):
        split = "train" if i < 12 else "valid" if i < 15 else "test"
        d = per_split.setdefault(split, {"info": {"description": "shapes"}, "licenses": [], "categories": cats,
                                          "images": [], "annotations": []})
        (root / split).mkdir(parents=True, exist_ok=True)
        name = _rf(f"photo{i:03d}", "orig")
        shutil.copyfile(img, root / split / name)
        iid = len(d["images"])
        d["images"].append({"id": iid, "license": 1, "file_name": name, "height": imgsz, "width": imgsz,
                            "date_captured": "2026-01-01T00:00:00+00:00"})
        for r in rows:
            w, h = r[3] * imgsz, r[4] * imgsz
            x, y = r[1] * imgsz - w / 2, r[2] * imgsz - h / 2
            d["annotations"].append({"id": ann_id, "image_id": iid, "category_id": int(r[0]) + 1,
                                     "bbox": [round(x, 3), round(y, 3), round(w, 3), round(h, 3)],
                                     "area": round(w * h, 3), "segmentation": [], "iscrowd": 0})
            ann_id += 1
    train = per_split["train"]
    train["annotations"].append({"id": ann_id, "image_id": 0, "category_id": 1, "bbox": [1, 1, 20, 20],
                                 "area": 400, "segmentation": {"counts": [0], "size": [imgsz, imgsz]}, "iscrowd": 1})
    train["annotations"].append({"id": ann_id + 1, "image_id": 1, "category_id": 2, "bbox": [5, 5, 0, 10],
                                 "area": 0, "segmentation": [], "iscrowd": 0})
    for split, d in per_split.items():
        (root / split / "_annotations.coco.json").write_text(json.dumps(d))
    return root


def ultralytics_lists(tmp: Path, *, n: int = 16, imgsz: int = 64) -> Path:
    root = tmp / "ul-lists"
    drawn = _draw(tmp, n, 2, imgsz)
    lists: dict[str, list[str]] = {"train": [], "val": []}
    for i, (img, rows) in enumerate(drawn):
        split = "train" if i < 12 else "val"
        for kind in ("images", "labels"):
            (root / kind / split).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(img, root / "images" / split / f"frame{i:03d}.png")
        (root / "labels" / split / f"frame{i:03d}.txt").write_text(_rows(rows))
        lists[split].append(f"./images/{split}/frame{i:03d}.png")
    for split, lines in lists.items():
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (root / "dataset.yaml").write_text(yaml.safe_dump(
        {"path": ".", "train": "train.txt", "val": "val.txt", "names": dict(enumerate(CLASSES))}, sort_keys=False))
    return root


def cvat_project(tmp: Path, *, n: int = 16, imgsz: int = 64) -> Path:
    root = tmp / "cvat"
    drawn = _draw(tmp, n, 3, imgsz)
    labels = "".join(f"<label><name>{c}</name><type>rectangle</type><attributes/></label>" for c in CLASSES)
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n<version>1.1</version>\n'
             f"<meta><project><id>1</id><name>shapes</name><labels>{labels}</labels></project></meta>\n"]
    for i, (img, rows) in enumerate(drawn):
        subset = "Train" if i < 12 else "Validation"
        (root / "images" / subset).mkdir(parents=True, exist_ok=True)
        name = f"frame_{i:06d}.png"
        shutil.copyfile(img, root / "images" / subset / name)
        shapes = ""
        for r in rows:
            x0, y0 = (r[1] - r[3] / 2) * imgsz, (r[2] - r[4] / 2) * imgsz
            x1, y1 = (r[1] + r[3] / 2) * imgsz, (r[2] + r[4] / 2) * imgsz
            shapes += (f'<box label="{CLASSES[int(r[0])]}" source="manual" occluded="0" xtl="{x0:.2f}" '
                       f'ytl="{y0:.2f}" xbr="{x1:.2f}" ybr="{y1:.2f}" z_order="0"></box>')
        if i == 0:
            shapes += '<polygon label="rock" source="manual" occluded="0" points="1,1;5,1;5,5" z_order="0"/>'
        parts.append(f'<image id="{i}" name="{name}" subset="{subset}" width="{imgsz}" height="{imgsz}">'
                     f"{shapes}</image>\n")
    parts.append("</annotations>\n")
    (root / "annotations.xml").write_text("".join(parts))
    return root


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root (symlinks as their target text): the source-never-modified check."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = (os.readlink(p) if p.is_symlink()
                                             else hashlib.sha256(p.read_bytes()).hexdigest())
    return out
