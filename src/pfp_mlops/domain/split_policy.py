"""Split assignment: a pure function of a stable key and the seed.

Adding items never moves existing ones (each item's split depends only on its own key), so an image that was
in TEST can never reach a later model's TRAIN set. Items with identical bytes are kept together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

from pfp_mlops.domain.models import SPLITS


def assign_split(key: str, seed: int, ratios: Sequence[float]) -> str:
    """The split of one item: sha256(seed:key) mapped to [0, 1) and cut at the cumulative ratios."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, ratio in zip(SPLITS, ratios, strict=True):
        edge += ratio
        if u < edge:
            return name
    return SPLITS[-1]


def assign_all(
    keys: Sequence[str], content_hashes: Sequence[str], seed: int, ratios: Sequence[float]
) -> tuple[list[str], int]:
    """Assign every item; items sharing image bytes all take the split of their smallest key.

    Returns the splits and how many items were moved to follow a duplicate.
    """
    by_key = {k: assign_split(k, seed, ratios) for k in set(keys)}
    leader: dict[str, str] = {}
    for key, h in zip(keys, content_hashes, strict=True):
        if h not in leader or key < leader[h]:
            leader[h] = key
    out, moved = [], 0
    for key, h in zip(keys, content_hashes, strict=True):
        split = by_key[leader[h]]
        if split != by_key[key]:
            moved += 1
        out.append(split)
    return out, moved


def split_fingerprint(triples: Iterable[tuple[str, str, str]], split_config: dict) -> str:
    """Hash of the sorted (path, content hash, split) triples plus the split config."""
    h = hashlib.sha256()
    h.update(json.dumps(split_config, sort_keys=True).encode())
    for path, content, split in sorted(triples):
        h.update(f"{path}\0{content}\0{split}\n".encode())
    return h.hexdigest()[:16]
