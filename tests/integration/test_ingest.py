"""`pfp ingest` on exports that look like the real ones (tests/ingest_exports.py): what lands in data/, the groups,
the class map, the report, the exit codes, and that the source is never modified (a checksum of every file)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
from tests import ingest_exports as X
from tests.helpers import pfp, write_config


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("exports")
    out = {"roboflow": X.roboflow_yolo(tmp), "coco": X.roboflow_coco(tmp), "yolo": X.ultralytics_lists(tmp),
           "cvat": X.cvat_project(tmp)}
    leak_dir = tmp / "leaky"
    leak_dir.mkdir()
    out["leaky"] = X.roboflow_yolo(leak_dir, leak=True)
    return out


@pytest.fixture(scope="module")
def digests(exports: dict[str, Path]) -> dict[str, dict[str, str]]:
    return {k: X.tree_digest(p) for k, p in exports.items()}


@pytest.fixture(autouse=True)
def _source_untouched(request: pytest.FixtureRequest):
    """After every test: every file of every export has the bytes it had before (the source is only read)."""
    yield
    if "exports" in request.fixturenames:
        exports, digests = request.getfixturevalue("exports"), request.getfixturevalue("digests")
        for k, p in exports.items():
            assert X.tree_digest(p) == digests[k], f"the {k} export was modified"


def _ingest(*args: str) -> tuple[int, dict, str]:
    r = pfp("ingest", *args, "--json")
    return r.exit_code, json.loads(r.stdout), r.stderr


def _rows(data: Path) -> list[dict[str, str]]:
    with open(data / "dataset_info.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pfp: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_roboflow_yolo_export(workdir, exports):
    """Roboflow's `../train/images` resolve to the export's folders; augmented copies share their photo's group;
    images are hard links to the source; labels, CSV, classes.yaml and the report land in data/."""
    code, out, _ = _ingest(str(exports["roboflow"]))
    assert code == 0, out
    r = out["result"]
    assert r["format"] == "roboflow" and r["ok"] is True and r["link_mode"] == "hardlink"
    assert r["source"]["roots"]["train"] == [str((exports["roboflow"] / "train" / "images").resolve())]
    assert r["source"]["roboflow"]["project"] == "shapes"
    assert r["counts"]["per_split"]["train"]["images"] == 36 and r["counts"]["images"] == 42
    assert r["warnings"]["duplicate"]["count"] == 24 and r["groups"]["duplicates"]["within_split"] == 24
    data = workdir / "data"
    rows = _rows(data)
    assert list(rows[0]) == ["image_path", "label_path", "group", "source_split", "sha256", "width", "height"]
    groups = defaultdict(list)
    for row in rows:
        groups[row["group"]].append(row)
        assert (data / row["label_path"]).is_file() and row["width"] == "64"
    assert len(groups) == 18 and all(len(v) == 3 for k, v in groups.items() if int(k[5:]) < 12)
    src = exports["roboflow"] / "train" / "images" / Path(rows[0]["image_path"]).name
    assert os.stat(data / rows[0]["image_path"]).st_ino == os.stat(src).st_ino
    assert (data / "classes.yaml").read_text().count("- rock") == 1
    assert json.loads((data / "ingest_report.json").read_text())["source"]["dataset_digest"] == \
        r["source"]["dataset_digest"]

    cfg = write_config(workdir / "cfg.yaml", data={"classes_file": "data/classes.yaml"},
                       split={"allow_missing_classes": True})
    assert pfp("split", "--config", str(cfg)).exit_code == 0
    manifest = json.loads((workdir / "dataset" / "split_manifest.json").read_text())
    assert manifest["source"]["format"] == "roboflow" and len(manifest["source"]["report_digest"]) == 64
    for members in groups.values():  # pfp's hash policy keeps a photo and its augmented copies together
        assert len({manifest["items"][m["image_path"]][1] for m in members}) == 1
    # the new split.use_source_split key, while false, leaves every existing split's fingerprint as it was
    from pfp_mlops.domain.split_policy import split_fingerprint
    from pfp_mlops.settings import load_config

    section = load_config(cfg).section("split")
    del section["use_source_split"]
    triples = [(p, c, s) for p, (c, s) in manifest["items"].items()]
    assert manifest["fingerprint"] == split_fingerprint(triples, section | {"classes": ["rock", "paper", "scissors"]})


def test_keep_source_splits_refuses_a_leak_and_writes_nothing(workdir, exports):
    """An augmented copy of a test photo in train is a leak: exit 2 naming the group, no data/; --allow-leaks
    ingests with a warning, and `split.use_source_split` keeps the export's splits."""
    code, out, stderr = _ingest(str(exports["leaky"]), "--keep-source-splits")
    assert code == 2
    line = _one_error_line(stderr)
    assert "leak 1" in line and "photo015" in line and "straddles" in line
    assert out["result"]["errors"]["leak"]["count"] == 1
    assert not (workdir / "data").exists() and not list(workdir.glob(".data.*"))

    code, out, _ = _ingest(str(exports["leaky"]), "--keep-source-splits", "--allow-leaks")
    assert code == 0 and out["result"]["warnings"]["leak"]["count"] == 1
    assert out["result"]["split_policy"] == "source"
    cfg = write_config(workdir / "cfg.yaml", data={"classes_file": "data/classes.yaml"},
                       split={"allow_missing_classes": True, "use_source_split": True})
    assert pfp("split", "--config", str(cfg)).exit_code == 0
    items = json.loads((workdir / "dataset" / "split_manifest.json").read_text())["items"]
    assert all(items[row["image_path"]][1] == row["source_split"] for row in _rows(workdir / "data"))


def test_roboflow_coco_export(workdir, exports):
    """The unannotated root category is dropped, the map is explicit (1→0, 2→1, 3→2, never 91→80), the iscrowd
    annotation is skipped and the zero-area box dropped, each reported; --keep-crowd keeps the crowd box."""
    code, out, _ = _ingest(str(exports["coco"]))
    assert code == 0, out
    r = out["result"]
    assert r["format"] == "coco" and r["classes"] == ["rock", "paper", "scissors"]
    assert r["meta"]["category_map"] == {"1": 0, "2": 1, "3": 2}
    assert r["meta"]["dropped_categories"] == [{"id": 0, "name": "shapes"}]
    assert {"iscrowd_skipped", "zero_area", "category_dropped"} <= set(r["warnings"])
    data = workdir / "data"
    first = next(row for row in _rows(data) if row["image_path"].startswith("images/train/photo000"))
    lines = (data / first["label_path"]).read_text().splitlines()
    ref = json.loads((exports["coco"] / "train" / "_annotations.coco.json").read_text())
    anns = [a for a in ref["annotations"] if a["image_id"] == 0 and not a["iscrowd"]]
    assert len(lines) == len(anns)
    cls, cx, cy, w, h = lines[0].split()
    x, y, bw, bh = anns[0]["bbox"]
    assert int(cls) == anns[0]["category_id"] - 1
    assert float(cx) == pytest.approx((x + bw / 2) / 64, abs=1e-5) and float(w) == pytest.approx(bw / 64, abs=1e-5)
    assert "category_map" in (data / "classes.yaml").read_text()

    code, out, _ = _ingest(str(exports["coco"]), "--keep-crowd", "--out", "data2")
    assert code == 0 and "iscrowd_skipped" not in out["result"]["warnings"]
    assert out["result"]["counts"]["boxes"] == r["counts"]["boxes"] + 1


def test_ultralytics_yaml_with_lists_and_names_dict(workdir, exports):
    """`path: .`, `.txt` lists of `./images/…` lines, `names` as a dict; `val` becomes pfp's `valid`."""
    code, out, _ = _ingest(str(exports["yolo"]), "--copy")
    assert code == 0, out
    r = out["result"]
    assert r["format"] == "yolo" and r["classes"] == ["rock", "paper", "scissors"] and r["link_mode"] == "copy"
    assert {s: v["images"] for s, v in r["counts"]["per_split"].items()} == {"train": 12, "valid": 4}
    row = _rows(workdir / "data")[0]
    assert row["image_path"] == "images/train/frame000.png" and row["source_split"] == "train"
    assert "image_not_listed" not in r["warnings"]
    img = workdir / "data" / row["image_path"]
    assert not img.is_symlink() and os.stat(img).st_nlink == 1
    src_label = (exports["yolo"] / "labels" / "train" / "frame000.txt").read_text().split()
    assert [float(v) for v in (workdir / "data" / row["label_path"]).read_text().split()] == pytest.approx(
        [float(v) for v in src_label], abs=1e-6)


def test_an_image_left_out_of_a_list_is_ignored_with_a_warning(workdir, exports):
    src = _copy(exports, "yolo", workdir / "src")
    lines = (src / "train.txt").read_text().splitlines()
    (src / "train.txt").write_text("\n".join(lines[1:]) + "\n")
    code, out, _ = _ingest(str(src))
    assert code == 0, out
    assert out["result"]["warnings"]["image_not_listed"]["examples"] == [
        "labels/train/frame000.txt: its image is in no split list: ignored"]
    assert out["result"]["counts"]["images"] == 15


def test_cvat_project_export(workdir, exports):
    """CVAT for images 1.1: project labels, subsets Train/Validation under images/<subset>/, polygons skipped."""
    code, out, _ = _ingest(str(exports["cvat"]))
    assert code == 0, out
    r = out["result"]
    assert r["format"] == "cvat" and r["classes"] == ["rock", "paper", "scissors"]
    assert set(r["counts"]["per_split"]) == {"train", "valid"}
    assert r["warnings"]["shape_skipped"]["count"] == 1
    assert (workdir / "data" / "images" / "valid" / "frame_000012.png").is_file()


def test_bare_folders_take_classes_from_classes_txt_or_the_config(workdir):
    """images/ + labels/ (pfp's own demo layout): names from classes.txt, else the project's data.classes."""
    from pfp_mlops.demo.synthetic import generate

    src = workdir / "folders"
    generate(src, n_images=12, imgsz=64, seed=4)
    (src / "classes.txt").write_text("rock\npaper\nscissors\n")
    code, out, _ = _ingest(str(src))
    assert code == 0, out
    assert out["result"]["format"] == "folders" and out["result"]["meta"]["classes_from"] == "classes.txt"
    assert _rows(workdir / "data")[0]["image_path"] == "images/all/img_000000.png"
    (src / "classes.txt").unlink()
    code, out, _ = _ingest(str(src), "--out", "data2")
    assert code == 0 and out["result"]["meta"]["classes_from"] == "data.classes of the project config"


def test_project_classes_that_differ_are_refused_with_both_lists(workdir, exports):
    cfg = write_config(workdir / "cfg.yaml", data={"classes": ["cat", "dog"]})
    r = pfp("ingest", str(exports["roboflow"]), "--config", str(cfg))
    assert r.exit_code == 2
    line = _one_error_line(r.stderr)
    assert "['rock', 'paper', 'scissors']" in line and "['cat', 'dog']" in line and "re-maps" in line
    assert not (workdir / "data").exists()


def test_group_regex_and_an_existing_data_folder(workdir, exports):
    """--group-regex groups frames by a name pattern; a non-empty output needs --force, which replaces it."""
    code, out, _ = _ingest(str(exports["yolo"]), "--group-regex", r"frame(\d\d)\d")
    assert code == 0
    groups = {row["group"] for row in _rows(workdir / "data")}
    assert groups == {"00", "01"}
    code, out, stderr = _ingest(str(exports["cvat"]))
    assert code == 2 and "--force" in _one_error_line(stderr)
    assert pfp("ingest", str(exports["cvat"]), "--force").exit_code == 0
    assert json.loads((workdir / "data" / "ingest_report.json").read_text())["format"] == "cvat"
    assert not list(workdir.glob(".data.*"))


def test_a_failure_while_writing_leaves_the_data_folder_as_it_was(workdir, exports, monkeypatch):
    """A crash half-way through the links: no new data/, the old one intact (with --force), no temporary folder;
    a temporary folder of a killed ingest (dead pid) is removed by the next one. Same input, same digest."""
    from pfp_mlops.services.ingest import run_ingest
    from pfp_mlops.settings import PipelineConfig

    first = run_ingest(PipelineConfig(), exports["cvat"])
    old = X.tree_digest(workdir / "data")
    calls = {"n": 0}
    real_link = os.link

    def flaky_link(src, dst):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(5, "Input/output error")
        real_link(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "link", flaky_link)
        with pytest.raises(OSError):
            run_ingest(PipelineConfig(), exports["cvat"], force=True)
    assert X.tree_digest(workdir / "data") == old and not list(workdir.glob(".data.*"))
    (workdir / ".data.ingest-999999999-dead").mkdir()
    again = run_ingest(PipelineConfig(), exports["cvat"], force=True)
    assert not list(workdir.glob(".data.*"))
    assert again.source["dataset_digest"] == first.source["dataset_digest"]


def test_parallel_workers_write_exactly_what_the_serial_path_writes(workdir, exports):
    """`--workers 3` (forked workers over ranges of the images) and `--workers 1` give the same data folder byte for
    byte (report timestamps aside): the same hashes, sizes, links, labels, CSV rows and messages, in the same order.
    Real `pfp` processes: the CLI forks only when it runs no thread."""
    import subprocess
    import sys

    bin_ = Path(sys.executable).parent / "pfp"
    trees, reports = [], []
    for n in ("1", "3"):
        out = workdir / f"data{n}"
        r = subprocess.run([str(bin_), "ingest", str(exports["roboflow"]), "--out", str(out), "--workers", n,
                            "--json"], capture_output=True, text=True, timeout=120, cwd=workdir)
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)["result"]
        for k in ("out", "next_steps", "duration_s"):
            rep.pop(k, None)
        rep["source"].pop("ingested_at")
        reports.append(rep)
        tree = X.tree_digest(out)
        tree.pop("ingest_report.json")
        trees.append(tree)
        assert os.stat(out / _rows(out)[0]["image_path"]).st_nlink >= 2  # hard links, from the workers too
    assert trees[0] == trees[1] and len(trees[0]) == 2 * 42 + 2
    assert reports[0] == reports[1]


def test_a_failure_in_a_worker_leaves_nothing_behind(workdir, exports):
    """A link that fails in a forked worker is raised in the parent, which removes its temporary folder. In a fresh
    process (this one may run threads by now, and then pfp does not fork), with os.link failing for some images."""
    import subprocess
    import sys

    script = f"""
import os, sys
from pathlib import Path
from pfp_mlops.services.ingest import parallel, run_ingest
from pfp_mlops.settings import PipelineConfig
assert parallel.workers_for(42, 2) == 2
real_link = os.link
def flaky_link(src, dst):
    if dst.endswith(("2.png", "2.jpg")):
        raise OSError(5, "Input/output error")
    real_link(src, dst)
os.link = flaky_link
try:
    run_ingest(PipelineConfig(), Path({str(exports["roboflow"])!r}), workers=2)
except OSError as e:
    print("raised:", e)
    sys.exit(0)
sys.exit("no error raised")
"""
    r = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "raised: [Errno 5] Input/output error" in r.stdout
    assert not (workdir / "data").exists() and not list(workdir.glob(".data.*"))


# --- bad input: one line, exit 2, nothing written, the source untouched -------------------------------------------

def _copy(exports: dict[str, Path], name: str, dst: Path) -> Path:
    return Path(shutil.copytree(exports[name], dst / name, symlinks=True))


def _bad_yaml_no_names(src: Path) -> str:
    (src / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 3\n")
    return "no `names:`"


def _bad_coco_not_json(src: Path) -> str:
    (src / "train" / "_annotations.coco.json").write_text('{"images": [ oops')
    return "_annotations.coco.json:1:"


def _bad_label_without_image(src: Path) -> str:
    (src / "valid" / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    return "valid/labels/ghost.txt: label file for a missing image"


def _bad_symlink_loop(src: Path) -> str:
    (src / "train" / "images" / "loop").symlink_to(src / "train" / "images")
    return "symlink loop"


def _bad_symlink_cycle(src: Path) -> str:
    a, b = src / "train" / "images" / "a.png", src / "train" / "images" / "b.png"
    a.symlink_to(b)
    b.symlink_to(a)
    return "symlink loop at"


def _bad_escape(src: Path) -> str:
    (src / "data.yaml").write_text("train: ../../outside\nval: ../valid/images\nnames: [rock, paper, scissors]\n")
    (src.parent.parent / "outside").mkdir(exist_ok=True)
    return "escapes the source root"


def _bad_coco_escape(src: Path) -> str:
    ann = src / "train" / "_annotations.coco.json"
    data = json.loads(ann.read_text())
    (src.parent / "secret.png").write_bytes(b"not yours")
    data["images"][0]["file_name"] = "../../secret.png"
    ann.write_text(json.dumps(data))
    return "escapes the source root"


def _bad_label_syntax(src: Path) -> str:
    lbl = next((src / "train" / "labels").glob("photo003*"))
    lbl.write_text(lbl.read_text() + "7 0.5 0.5 0.1 0.1\n0 0.5 0.5\n")
    return f"train/labels/{lbl.name}:"


def _bad_truncated_image(src: Path) -> str:
    img = next((src / "valid" / "images").glob("*.png"))
    img.write_bytes(img.read_bytes()[:-30])
    return "truncated PNG"


def _bad_unknown_format(src: Path) -> str:
    for p in list(src.iterdir()):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (src / "notes.txt").write_text("hello")
    return "unknown format"


BAD = {
    "missing source": (None, [], "source not found"),
    "unknown format": ("roboflow", [], "unknown format"),
    "unknown --format": ("roboflow", ["--format", "voc"], "unknown format 'voc'"),
    "yaml without names": ("roboflow", [], None),
    "coco not json": ("coco", [], None),
    "label for a missing image": ("roboflow", [], None),
    "symlink loop": ("roboflow", [], None),
    "symlink cycle": ("roboflow", [], None),
    "path escaping the root": ("roboflow", [], None),
    "coco file_name escaping the root": ("coco", [], None),
    "bad label syntax": ("roboflow", [], None),
    "truncated image": ("roboflow", [], None),
    "bad group regex": ("roboflow", ["--group-regex", "(unclosed"], "--group-regex"),
}
MUTATE = {"yaml without names": _bad_yaml_no_names, "coco not json": _bad_coco_not_json,
          "label for a missing image": _bad_label_without_image, "symlink loop": _bad_symlink_loop,
          "symlink cycle": _bad_symlink_cycle,
          "path escaping the root": _bad_escape,
          "coco file_name escaping the root": _bad_coco_escape, "bad label syntax": _bad_label_syntax,
          "truncated image": _bad_truncated_image, "unknown format": _bad_unknown_format}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_source(workdir, exports, case):
    """Each hostile source exits 2 with one line naming the problem; nothing is written; the source is as it was."""
    name, extra, needle = BAD[case]
    src = workdir / "missing-export"
    if name is not None:
        src = _copy(exports, name, workdir / "src")
        if case in MUTATE:
            needle = MUTATE[case](src)
    before = X.tree_digest(src) if src.exists() else None
    r = pfp("ingest", str(src), *extra)
    assert r.exit_code == 2, r.output
    assert needle in _one_error_line(r.stderr)
    assert not (workdir / "data").exists() and not list(workdir.glob(".data.*"))
    if before is not None:
        assert X.tree_digest(src) == before
