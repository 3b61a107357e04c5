"""The typed split manifest: parsed from `split_manifest.json`, damaged files named, items out of `--json`."""

from __future__ import annotations

import json

import pytest

from pfp_mlops.domain.errors import DataError
from pfp_mlops.domain.models import SplitManifest
from pfp_mlops.services.split import MANIFEST, current_split, read_manifest
from pfp_mlops.settings import PipelineConfig

RAW = {"fingerprint": "abc", "counts": {"train": 2, "valid": 1, "test": 1},
       "class_counts": {"train": {"a": 2}, "valid": {"a": 1}, "test": {"a": 1}}, "data_yaml": "/d/data.yaml",
       "list_files": {"train": "/d/train.txt", "valid": "/d/valid.txt", "test": "/d/test.txt"}, "seed": 42,
       "n_duplicates_grouped": 0, "moved": None, "data_root": "/data", "source": None,
       "items": {"images/1.png": ["h1", "train"], "images/2.png": ["h2", "test"]}}


def test_round_trip_and_items_stay_out_of_the_json():
    m = SplitManifest.from_dict(RAW)
    assert m.fingerprint == "abc" and m.items["images/2.png"] == ["h2", "test"] and str(m.list_file("test")) == \
        "/d/test.txt"
    assert m.to_dict() == {k: v for k, v in RAW.items() if k != "items"}
    assert "items" not in repr(m)


@pytest.mark.parametrize(("change", "needle"), [
    ({"fingerprint": None}, "'fingerprint' missing"),
    ({"counts": []}, "'counts' missing or not a dict"),
    ({"list_files": {"train": "x", "valid": "y"}}, "no 'test' entry"),
    ({"items": []}, "'items' is not an object"),
])
def test_malformed_manifests_name_the_field(tmp_path, change, needle):
    """read_manifest: a DataError naming the file and the field, and what to run."""
    (tmp_path / MANIFEST).write_text(json.dumps(RAW | change))
    with pytest.raises(DataError) as e:
        read_manifest(tmp_path)
    assert needle in e.value.message and str(tmp_path / MANIFEST) in e.value.message and "pfp split" in e.value.message


def test_missing_and_unreadable_manifests(tmp_path):
    assert read_manifest(tmp_path) is None
    with pytest.raises(DataError, match="run `pfp split` first"):
        current_split(PipelineConfig(paths={"dataset_dir": tmp_path}))
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(DataError, match="unreadable split manifest"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("[1]")
    with pytest.raises(DataError, match="not a JSON object"):
        read_manifest(tmp_path)
