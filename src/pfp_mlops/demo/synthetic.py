"""Deterministic synthetic detection data: rock (filled disc), paper (filled square), scissors (triangle).

Shapes are class-specific in geometry but random in colour, size and position over a noisy background, so a
detector has to learn shape, not colour. Same seed, same bytes.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("rock", "paper", "scissors")


def _draw(draw: ImageDraw.ImageDraw, cls: int, box: tuple[float, float, float, float], colour: tuple) -> None:
    x0, y0, x1, y1 = box
    if cls == 0:
        draw.ellipse(box, fill=colour)
    elif cls == 1:
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)


def _overlaps(box: tuple[float, float, float, float], others: list[tuple[float, float, float, float]]) -> bool:
    x0, y0, x1, y1 = box
    return any(not (x1 + 2 <= a or b + 2 <= x0 or y1 + 2 <= c or d + 2 <= y0) for a, c, b, d in others)


def generate(out_dir: Path, *, n_images: int = 300, imgsz: int = 160, seed: int = 0, max_objects: int = 3,
             classes: tuple[str, ...] = CLASSES) -> Path:
    """Write `images/`, `labels/` and `dataset_info.csv` under out_dir; return the CSV path."""
    rng = np.random.default_rng(seed)
    img_dir, lbl_dir = out_dir / "images", out_dir / "labels"
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    n_cls = min(len(classes), 3)
    for i in range(n_images):
        bg = rng.integers(0, 90, size=3)
        noise = rng.normal(0, 12, size=(imgsz, imgsz, 3))
        arr = np.clip(bg[None, None, :] + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "RGB")
        draw = ImageDraw.Draw(img)
        boxes: list[tuple[float, float, float, float]] = []
        lines = []
        # Every image shows each class at least once across a few images: cycle the first class by index.
        n_obj = int(rng.integers(1, max_objects + 1))
        for j in range(n_obj):
            cls = int(i % n_cls) if j == 0 else int(rng.integers(0, n_cls))
            for _ in range(20):
                size = float(rng.uniform(0.18, 0.38) * imgsz)
                x0 = float(rng.uniform(0, imgsz - size))
                y0 = float(rng.uniform(0, imgsz - size))
                box = (x0, y0, x0 + size, y0 + size)
                if not _overlaps(box, boxes):
                    break
            else:
                continue
            boxes.append(box)
            colour = tuple(int(c) for c in rng.integers(120, 256, size=3))
            _draw(draw, cls, box, colour)
            cx, cy = (box[0] + box[2]) / 2 / imgsz, (box[1] + box[3]) / 2 / imgsz
            w, h = (box[2] - box[0]) / imgsz, (box[3] - box[1]) / imgsz
            lines.append(f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
        name = f"img_{i:06d}"
        img.save(img_dir / f"{name}.png", optimize=False)
        (lbl_dir / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        rows.append((f"images/{name}.png", f"labels/{name}.txt"))
    csv_path = out_dir / "dataset_info.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image_path", "label_path"])
        w.writerows(rows)
    return csv_path
