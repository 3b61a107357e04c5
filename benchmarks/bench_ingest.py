"""`pfp ingest` of a generated 100,000-image COCO export, against the floor of reading and hashing the same files.

The export, CVAT's COCO layout: `annotations/instances_train.json` (100,000 images, 1–3 boxes each, 3 categories
plus an unannotated root category as Roboflow writes it) and `images/train/<shard>/<i>.png`: tiny valid 8×8 PNGs,
each carrying its index in a tEXt chunk so every file's bytes are unique (ingest groups byte-identical images, and a
dataset of copies would measure that rule). Generated once per benchmark run, in /dev/shm when it has room.

The floor is what any ingest must at least do, written plainly: read every file of the export (the JSON and every
image) and sha256 it. `pfp ingest` also parses the JSON, maps categories, checks every image's header and end
marker, groups and checks leaks, hard-links the images, writes 100,000 label files, the CSV, classes.yaml and the
report, into a temporary folder renamed into place. Both run as fresh processes on a warm page cache, in alternating
order; the output folder is removed between runs (untimed). Peak RSS is each child's own (wait4).

Target: ≤ 60 s and ≤ 1.5× the floor. Two more baselines say what that target asks. The write floor (a plain
Python script that also parses the JSON, hard-links every image and writes every label file, without any check)
shows what the checks themselves cost. The I/O floor does, with C tools, only the file-system work that any
ingest writing a YOLO data folder cannot avoid: `sha256sum` of every file (the floor's work), `cp -al` of the
images (one hard link each) and `tar -x` of the label files pfp wrote (one new file each, contents from one
archive). For 100,000 tiny files that work is system calls on file metadata, and the I/O floor measures how far
above the read-and-hash floor it lies by itself.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from _common import BIN, REPO, alternate_children, measure, median, offline_env, repeats, row, scratch, spread

N_IMAGES = 100_000
CLASSES = ["rock", "paper", "scissors"]

FLOOR = r'''
import hashlib, os, sys
n = 0
for dirpath, _, files in os.walk(sys.argv[1]):
    for f in files:
        with open(os.path.join(dirpath, f), "rb") as fh:
            hashlib.sha256(fh.read()).hexdigest()
        n += 1
print(n)
'''

# The least any ingest that writes a YOLO data folder does on top of the floor, written plainly: parse the JSON,
# read and hash every image, hard-link it into the output, write one label file per image.
WRITE_FLOOR = r'''
import hashlib, json, os, sys
src, out = sys.argv[1], sys.argv[2]
with open(os.path.join(src, "annotations", "instances_train.json"), "rb") as fh:
    raw = fh.read()
hashlib.sha256(raw).hexdigest()
data = json.loads(raw)
boxes = {}
for a in data["annotations"]:
    boxes.setdefault(a["image_id"], []).append(a["bbox"])
for im in data["images"]:
    name = im["file_name"]
    p = os.path.join(src, "images", "train", name)
    with open(p, "rb") as fh:
        hashlib.sha256(fh.read()).hexdigest()
    d = os.path.join(out, "images", os.path.dirname(name))
    if not os.path.isdir(d):
        os.makedirs(d)
        os.makedirs(d.replace(os.sep + "images" + os.sep, os.sep + "labels" + os.sep))
    os.link(p, os.path.join(out, "images", name))
    w, h = im["width"], im["height"]
    rows = "".join(f"0 {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}\n"
                   for x, y, bw, bh in boxes.get(im["id"], ()))
    with open(os.path.join(out, "labels", name[:-4] + ".txt"), "w") as fh:
        fh.write(rows)
print(len(data["images"]))
'''


IO_FLOOR = r'''
set -e
find "$1" -type f -print0 | xargs -0 sha256sum > /dev/null
mkdir -p "$2/images" "$2/labels"
cp -al "$1/images/train" "$2/images/train"
tar -xf "$3" -C "$2"
'''


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def generate(root: Path, n: int = N_IMAGES, seed: int = 0, size: int = 8) -> Path:
    rng = random.Random(seed)
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
    idats = [_chunk(b"IDAT", zlib.compress(b"".join(bytes([0]) + bytes([g]) * size for _ in range(size))))
             for g in range(256)]
    iend = _chunk(b"IEND", b"")
    images, anns = [], []
    img_root = root / "images" / "train"
    for shard in range(0, n, 1000):
        (img_root / f"{shard // 1000:03d}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = f"{i // 1000:03d}/{i:06d}.png"
        text = _chunk(b"tEXt", b"pfp-bench\0" + str(i).encode())
        (img_root / name).write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + text + idats[i % 256] + iend)
        images.append({"id": i, "file_name": name, "width": size, "height": size})
        for _ in range(rng.randint(1, 3)):
            w, h = rng.uniform(1, 4), rng.uniform(1, 4)
            anns.append({"id": len(anns), "image_id": i, "category_id": rng.randint(1, 3), "iscrowd": 0,
                         "bbox": [round(rng.uniform(0, size - w), 2), round(rng.uniform(0, size - h), 2),
                                  round(w, 2), round(h, 2)], "area": round(w * h, 2), "segmentation": []})
    cats = [{"id": 0, "name": "shapes", "supercategory": "none"}] + [
        {"id": i + 1, "name": c, "supercategory": "shapes"} for i, c in enumerate(CLASSES)]
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_train.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def run() -> list[dict]:
    import time

    with scratch("ingest", small_files=True) as tmp:
        t0 = time.perf_counter()
        export = generate(tmp / "export")
        gen_s = time.perf_counter() - t0
        out = tmp / "data"
        cfg = tmp / "cfg.yaml"
        cfg.write_text(json.dumps({"paths": {"data_dir": str(out)}, "data": {"classes": CLASSES},
                                   "train": {"imgsz": 32}}))
        env = offline_env(tmp / ".pfp")
        scripts = {"floor.py": FLOOR, "write_floor.py": WRITE_FLOOR, "io_floor.sh": IO_FLOOR}
        for name, text in scripts.items():
            (tmp / name).write_text(text)
        pfp_argv = [str(BIN / "pfp"), "ingest", str(export), "--config", str(cfg), "--json"]
        measure(pfp_argv, env=env, cwd=tmp)  # untimed: the label files the I/O floor extracts
        labels_tar = tmp / "labels.tar"
        subprocess.run(["tar", "-cf", str(labels_tar), "-C", str(out), "labels"], check=True)
        runs = alternate_children(
            {"pfp": pfp_argv, "pfp_serial": [*pfp_argv, "--workers", "1"],
             "floor": [sys.executable, str(tmp / "floor.py"), str(export)],
             "write_floor": [sys.executable, str(tmp / "write_floor.py"), str(export), str(out)],
             "io_floor": ["sh", str(tmp / "io_floor.sh"), str(export), str(out), str(labels_tar)]},
            repeats(3, 1), env=env, cwd=tmp, before=lambda: shutil.rmtree(out, ignore_errors=True))
    samples, cpu, rss = runs.wall, runs.cpu, runs.rss
    report = json.loads(runs.last["pfp"].stdout)["result"]
    pfp_s, floor_s, io_s = median(samples["pfp"]), median(samples["floor"]), median(samples["io_floor"])
    note = (f"pfp {spread(samples['pfp'])}; floor (sha256 of every file) {spread(samples['floor'])}; "
            f"{report['counts']['images']} images, {report['counts']['boxes']} boxes, {report['link_mode']}; "
            f"export generated in {gen_s:.0f} s")
    return [
        row("ingest_100k_wall", pfp_s, "s", baseline=floor_s, target="≤ 60 s and ≤ 1.5× floor",
            ok=pfp_s <= 60 and pfp_s <= 1.5 * floor_s, note=note),
        row("ingest_100k_cpu", median(cpu["pfp"]), "s", baseline=median(cpu["floor"]),
            target="≤ 60 s and ≤ 1.5× floor",
            ok=median(cpu["pfp"]) <= 60 and median(cpu["pfp"]) <= 1.5 * median(cpu["floor"]),
            note="user+system CPU of the child: what the wall time would be on idle cores"),
        row("ingest_100k_vs_write_floor", median(cpu["pfp"]), "s", baseline=median(cpu["write_floor"]),
            note="CPU against a plain script that also parses the JSON, hard-links every image and writes every "
                 f"label file (no checks): {spread(samples['write_floor'])} wall"),
        row("io_floor_vs_floor", io_s, "s", baseline=floor_s,
            note="the I/O floor (C tools: sha256sum of every file, cp -al of the images, tar -x of the label files) "
                 "against the read-and-hash floor: what the file-system work alone costs above it, before any "
                 f"parsing or checking; {spread(samples['io_floor'])}"),
        row("ingest_100k_vs_io_floor", pfp_s, "s", baseline=io_s, target="≤ 1.5× the I/O floor",
            ok=pfp_s <= 1.5 * io_s,
            note=f"wall, pfp ingest (--workers auto: one per idle CPU) against the I/O floor; with "
                 f"--workers 1 (serial) {spread(samples['pfp_serial'])}"),
        row("ingest_100k_peak_rss", max(rss["pfp"]), "MiB", baseline=max(rss["floor"]),
            note="peak RSS of the child (wait4), max over runs"),
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "benchmarks"))
    for r in run():
        print(r)
