"""Class lists, read explicitly: Ultralytics' `names` as a list or a dict, checked against `nc`; never re-mapped."""

from __future__ import annotations

from typing import Any


def normalise_names(names: Any, *, nc: Any = None, where: str = "names") -> list[str]:
    """`names` as Ultralytics accepts it (a list, or a dict {index: name} with indices 0..n-1) → a list.

    Raises ValueError with a message naming `where`: a dict with gaps or non-integer keys, duplicate or empty names,
    an `nc` that is not the number of names. pfp never invents `class_0`… names from `nc` alone.
    """
    if isinstance(names, dict):
        try:
            by_index = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{where}: keys must be class indices 0..n-1 (got {list(names)[:5]})") from None
        if sorted(by_index) != list(range(len(by_index))):
            raise ValueError(f"{where}: indices must be 0..{len(by_index) - 1} without gaps (got "
                             f"{sorted(by_index)[:10]})")
        out = [by_index[i] for i in range(len(by_index))]
    elif isinstance(names, list):
        out = list(names)
    else:
        raise ValueError(f"{where}: must be a list or a mapping of class index to name (got {type(names).__name__})")
    out = [str(n).strip() for n in out]
    if not out:
        raise ValueError(f"{where}: no classes")
    if any(not n for n in out):
        raise ValueError(f"{where}: empty class name at index {next(i for i, n in enumerate(out) if not n)}")
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        raise ValueError(f"{where}: duplicate class name {dupes[0]!r}")
    if nc is not None:
        try:
            n = int(nc)
            ok = float(nc) == n
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"nc: {nc!r} is not an integer")
        if n != len(out):
            raise ValueError(f"nc: {n} but {where} lists {len(out)} classes")
    return out
