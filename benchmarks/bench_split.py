"""`pfp split` on a generated 100,000-item dataset_info.csv with small image files, against a plain pandas baseline.

The dataset: 100,000 tiny valid PNGs (1×1 pixel; each carries its index in a tEXt chunk, so every image's bytes are
unique — the split keeps byte-identical images together, and a dataset of copies would measure that rule, not the
split) and their YOLO labels, 1–3 boxes of 3 classes. Generated once per benchmark run, in a temp folder.

The baseline is the least a correct split must do, written plainly: pandas reads the CSV; every image and label is
read and hashed (the duplicate rule needs image bytes, the class counts need labels); each key is hashed with sha256
to its split; the three list files are written. `pfp split` also checks every path, label line and class id, and
writes data.yaml and the manifest with the fingerprint. Both run as fresh processes on a warm page cache, in
alternating order (in /dev/shm when it has room, so other writers' disk traffic is not
measured); peak RSS is each child's own (wait4).

Target: ≤ 10 s and ≤ 1.5× the baseline.
"""

from __future__ import annotations

import json
import random
import struct
import sys
import zlib
from pathlib import Path

from _common import BIN, REPO, alternate_children, median, offline_env, repeats, row, scratch, spread

N_ITEMS = 100_000
CLASSES = ["rock", "paper", "scissors"]

BASELINE = r'''
import hashlib, sys
from pathlib import Path
import pandas as pd

root = Path(sys.argv[1]); out = Path(sys.argv[2]); seed = 42
edges = (("train", 0.7), ("valid", 0.85), ("test", 1.0))
df = pd.read_csv(root / "dataset_info.csv")
lists = {"train": [], "valid": [], "test": []}
content = {}
for image, label in zip(df["image_path"], df["label_path"]):
    data = (root / image).read_bytes()
    lbl = (root / label).read_bytes()
    content[image] = hashlib.blake2b(data + b"\0" + lbl, digest_size=16).hexdigest()
    classes = [int(line.split()[0]) for line in lbl.decode().splitlines() if line.strip()]
    u = int.from_bytes(hashlib.sha256(f"{seed}:{image}".encode()).digest()[:8], "big") / 2**64
    split = next(name for name, edge in edges if u < edge)
    lists[split].append(str(root / image))
out.mkdir(parents=True, exist_ok=True)
for name, items in lists.items():
    (out / f"{name}.txt").write_text("\n".join(items) + "\n")
print({k: len(v) for k, v in lists.items()})
'''


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def generate(root: Path, n: int = N_ITEMS, seed: int = 0) -> Path:
    """`root/dataset_info.csv`, `root/images/<shard>/<i>.png`, `root/labels/<shard>/<i>.txt` (1,000 per folder)."""
    rng = random.Random(seed)
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    idats = [_chunk(b"IDAT", zlib.compress(bytes([0, g]))) for g in range(256)]
    iend = _chunk(b"IEND", b"")
    lines = ["image_path,label_path"]
    for shard in range(0, n, 1000):
        (root / "images" / f"{shard // 1000:03d}").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{shard // 1000:03d}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sub = f"{i // 1000:03d}"
        img, lbl = f"images/{sub}/{i:06d}.png", f"labels/{sub}/{i:06d}.txt"
        text = _chunk(b"tEXt", b"pfp-bench\0" + str(i).encode())
        (root / img).write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + text + idats[i % 256] + iend)
        boxes = []
        for _ in range(rng.randint(1, 3)):
            w, h = rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3)
            boxes.append(f"{rng.randrange(3)} {rng.uniform(w / 2, 1 - w / 2):.6f} {rng.uniform(h / 2, 1 - h / 2):.6f} "
                         f"{w:.6f} {h:.6f}")
        (root / lbl).write_text("\n".join(boxes) + "\n")
        lines.append(f"{img},{lbl}")
    (root / "dataset_info.csv").write_text("\n".join(lines) + "\n")
    return root / "dataset_info.csv"


def config(path: Path, data_dir: Path, dataset_dir: Path) -> Path:
    path.write_text(json.dumps({"paths": {"data_dir": str(data_dir), "dataset_dir": str(dataset_dir)},
                                "data": {"classes": CLASSES}}))
    return path


def run() -> list[dict]:
    import time

    with scratch("split", small_files=True) as tmp:
        t0 = time.perf_counter()
        data = tmp / "data"
        generate(data)
        gen_s = time.perf_counter() - t0
        cfg = config(tmp / "cfg.yaml", data, tmp / "dataset")
        script = tmp / "baseline.py"
        script.write_text(BASELINE)
        runs = alternate_children({"pfp": [str(BIN / "pfp"), "split", "--config", str(cfg)],
                                   "baseline": [sys.executable, str(script), str(data), str(tmp / "baseline-out")]},
                                  repeats(5, 2), env=offline_env(tmp / ".pfp"), cwd=tmp)
        manifest = json.loads((tmp / "dataset" / "split_manifest.json").read_text())
        counts = manifest["counts"]
    samples, cpu, rss = runs.wall, runs.cpu, runs.rss
    pfp_s, base_s = median(samples["pfp"]), median(samples["baseline"])
    pfp_cpu, base_cpu = median(cpu["pfp"]), median(cpu["baseline"])
    return [
        row("split_100k_wall", pfp_s, "s", baseline=base_s, target="≤ 10 s and ≤ 1.5× baseline",
            ok=pfp_s <= 10 and pfp_s <= 1.5 * base_s,
            note=f"pfp {spread(samples['pfp'])}; baseline (pandas + read/hash + sha256 split) "
                 f"{spread(samples['baseline'])}; {counts['train']}/{counts['valid']}/{counts['test']}; "
                 f"dataset generated in {gen_s:.0f} s"),
        row("split_100k_cpu", pfp_cpu, "s", baseline=base_cpu, target="≤ 10 s and ≤ 1.5× baseline",
            ok=pfp_cpu <= 10 and pfp_cpu <= 1.5 * base_cpu,
            note="user+system CPU of the child: what the wall time would be on idle cores"),
        row("split_100k_peak_rss", max(rss["pfp"]), "MiB", baseline=max(rss["baseline"]),
            note="peak RSS of the child (wait4), max over runs"),
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "benchmarks"))
    for r in run():
        print(r)
