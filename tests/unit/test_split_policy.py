"""Split assignment is a pure, stable function of the key and seed."""

from __future__ import annotations

from collections import Counter

from pfp_mlops.domain.split_policy import assign_all, assign_split, split_fingerprint

RATIOS = (0.7, 0.15, 0.15)


def test_assignment_is_deterministic():
    """It gives the same split for the same key and seed, every time."""
    assert [assign_split(f"img{i}", 42, RATIOS) for i in range(200)] == [
        assign_split(f"img{i}", 42, RATIOS) for i in range(200)
    ]


def test_adding_items_never_moves_existing_ones():
    """It keeps every existing item's split when 1,000 new items arrive."""
    keys = [f"images/a{i}.png" for i in range(500)]
    before, _ = assign_all(keys, keys, 7, RATIOS)
    more = keys + [f"images/b{i}.png" for i in range(1000)]
    after, _ = assign_all(more, more, 7, RATIOS)
    assert after[:500] == before


def test_ratios_are_respected_roughly():
    """It puts about 70/15/15 % of 20,000 items in train/valid/test."""
    c = Counter(assign_split(str(i), 1, RATIOS) for i in range(20000))
    assert abs(c["train"] / 20000 - 0.7) < 0.02
    assert abs(c["valid"] / 20000 - 0.15) < 0.02
    assert abs(c["test"] / 20000 - 0.15) < 0.02


def test_seed_changes_assignment():
    """It reshuffles when the seed changes."""
    a = [assign_split(str(i), 1, RATIOS) for i in range(300)]
    b = [assign_split(str(i), 2, RATIOS) for i in range(300)]
    assert a != b


def test_identical_bytes_land_in_the_same_split():
    """It keeps items whose image bytes are identical together, following the smallest key."""
    keys = [f"k{i}" for i in range(300)]
    hashes = [f"h{i}" for i in range(300)]
    hashes[250] = hashes[3]  # k250 is a byte-identical copy of k3
    splits, moved = assign_all(keys, hashes, 42, RATIOS)
    assert splits[250] == splits[3] == assign_split("k250" if "k250" < "k3" else "k3", 42, RATIOS)
    assert moved in (0, 1)
    # groups of duplicates spread across many keys all follow one leader
    hashes2 = ["same"] * 50
    splits2, _ = assign_all(keys[:50], hashes2, 42, RATIOS)
    assert len(set(splits2)) == 1


def test_fingerprint_depends_on_content_split_and_config_not_order():
    """Its fingerprint changes with content, split or config, not with row order."""
    triples = [("a.png", "h1", "train"), ("b.png", "h2", "test")]
    fp = split_fingerprint(triples, {"seed": 1})
    assert fp == split_fingerprint(list(reversed(triples)), {"seed": 1})
    assert fp != split_fingerprint([("a.png", "hX", "train"), ("b.png", "h2", "test")], {"seed": 1})
    assert fp != split_fingerprint([("a.png", "h1", "valid"), ("b.png", "h2", "test")], {"seed": 1})
    assert fp != split_fingerprint(triples, {"seed": 2})
