"""The one label parser, class lists, image headers and ingest's grouping: pure functions, parametrized tables."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from pfp_mlops.domain.classes import normalise_names
from pfp_mlops.domain.labels import parse_label_text
from pfp_mlops.services.ingest.checks import assign_groups, image_size
from pfp_mlops.services.ingest.model import Problems, SourceImage, box_from_corners, dest_for


@pytest.mark.parametrize(("text", "kind", "line"), [
    ("0 0.5 0.5 0.2\n", "fields", 1),
    ("\n0 0.5 0.5 0.2 0.2 0.1\n", "fields", 2),
    ("x 0.5 0.5 0.2 0.2\n", "number", 1),
    ("0 0.5 nan 0.2 0.2\n", "number", 1),
    ("1.5 0.5 0.5 0.2 0.2\n", "number", 1),
    ("3 0.5 0.5 0.2 0.2\n", "class", 1),
    ("-1 0.5 0.5 0.2 0.2\n", "class", 1),
    ("0 1.5 0.5 0.2 0.2\n", "range", 1),
    ("0 0.5 0.5 0 0.2\n", "zero_area", 1),
])
def test_each_problem_is_named_with_its_line(text, kind, line):
    boxes, problems = parse_label_text(text, n_classes=3)
    assert [(p.kind, p.line) for p in problems] == [(kind, line)]
    assert len(boxes) == (1 if kind in ("range", "zero_area") else 0)


def test_valid_rows_polygons_and_integer_valued_class_ids():
    text = "0 0.5 0.5 0.2 0.4\n\n2.0 0.1 0.2 0.3 0.2 0.2 0.6\n"
    boxes, problems = parse_label_text(text, n_classes=3, polygons=True)
    assert problems == []
    assert [(b.line, b.cls) for b in boxes] == [(1, 0), (3, 2)]
    assert (boxes[1].cx, boxes[1].cy, boxes[1].w, boxes[1].h) == pytest.approx((0.2, 0.4, 0.2, 0.4))
    _, problems = parse_label_text("2 0.1 0.2 0.3 0.2 0.2 0.6\n", n_classes=3)  # polygons off: 7 fields is wrong
    assert problems[0].kind == "fields"


@pytest.mark.parametrize(("names", "nc", "expected"), [
    (["a", "b"], None, ["a", "b"]),
    ({0: "a", 1: "b"}, 2, ["a", "b"]),
    ({"1": "b", "0": "a"}, "2", ["a", "b"]),
])
def test_names_as_list_or_dict(names, nc, expected):
    assert normalise_names(names, nc=nc) == expected


@pytest.mark.parametrize(("names", "nc", "needle"), [
    ({0: "a", 2: "c"}, None, "without gaps"),
    (["a", "a"], None, "duplicate"),
    (["a", "b"], 3, "nc: 3"),
    (["a"], "x", "not an integer"),
    ("a b", None, "list or a mapping"),
    ([], None, "no classes"),
])
def test_bad_names(names, nc, needle):
    with pytest.raises(ValueError, match=needle):
        normalise_names(names, nc=nc)


def _encoded(fmt: str, size=(40, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "WEBP", "TIFF"])
def test_image_size_from_the_header_and_truncation(fmt):
    data = _encoded(fmt)
    assert image_size(data) == (40, 24, "")
    if fmt in ("PNG", "JPEG"):
        assert "truncated" in image_size(data[:-10])[2]
    assert "not an image" in image_size(b"GIF89a" + data)[2]


def test_boxes_are_clipped_or_dropped_and_reported():
    p = Problems()
    assert box_from_corners(0, -0.1, 0.2, 0.3, 0.4, "a", p) == pytest.approx((0, 0.15, 0.3, 0.3, 0.2))
    assert box_from_corners(1, 1.1, 0.2, 1.3, 0.4, "b", p) is None
    assert box_from_corners(1, 0.5, 0.2, 0.5, 0.4, "c", p) is None
    assert p.counts == {"box_outside": 2, "zero_area": 1} and p.n_errors() == 0


@pytest.mark.parametrize(("split", "path", "expected"), [
    ("train", "/x/train/images/a.jpg", "train/a.jpg"),             # Roboflow
    ("train", "/x/images/train/a.jpg", "train/a.jpg"),             # Ultralytics / CVAT YOLO
    ("valid", "/x/images/val/a.jpg", "valid/a.jpg"),
    ("train", "/x/images/train2017/a.jpg", "train/train2017/a.jpg"),
    (None, "/x/images/sub/a.jpg", "all/sub/a.jpg"),
    ("test", "/x/test/a.jpg", "test/a.jpg"),                        # Roboflow COCO: beside the JSON
    ("train", "/x/images/train/myimages/a.jpg", "train/myimages_/a.jpg"),
])
def test_destination_names(split, path, expected):
    assert dest_for(split, path, "/x/test") == expected


def _img(name: str, split: str, sha: str) -> SourceImage:
    return SourceImage(path=name, rel=f"{split}/{name}", split=split, dest=f"{split}/{name}", boxes=[], sha256=sha)


def test_groups_roboflow_stems_identical_bytes_and_a_regex():
    import re

    imgs = [_img("a_jpg.rf.111.jpg", "train", "s1"), _img("a_jpg.rf.222.jpg", "test", "s2"),
            _img("b.png", "train", "s3"), _img("c.png", "valid", "s3"), _img("d.png", "valid", "s4"),
            _img("vid1_f001.png", "train", "s5"), _img("vid1_f002.png", "test", "s6")]
    groups = assign_groups(imgs, None)
    assert groups[0] == groups[1] == "a"
    assert groups[2] == groups[3] == "sha256:s3" and groups[4] is None and groups[5] is None
    groups = assign_groups(imgs, re.compile(r"(vid\d+)_f\d+"))
    assert groups[5] == groups[6] == "vid1"
