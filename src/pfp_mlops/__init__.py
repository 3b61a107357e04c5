"""pfp-mlops: take an Ultralytics YOLO detector from research to production on MLflow.

`from pfp_mlops import Project` is the public Python API (pfp_mlops.api). It is imported on first use, so
`import pfp_mlops` (and `pfp --help`) stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Project", "Refused", "StatusReport", "__version__"]

if TYPE_CHECKING:
    from pfp_mlops.api import Project, Refused, StatusReport


def __getattr__(name: str) -> Any:
    """Lazy public names: the API module (and pydantic, yaml behind it) loads on first access only."""
    if name in ("Project", "Refused", "StatusReport"):
        from pfp_mlops import api

        return getattr(api, name)
    raise AttributeError(f"module 'pfp_mlops' has no attribute {name!r}")
