"""Which version a rollback goes to."""

from __future__ import annotations

import pytest

from pfp_mlops.domain.errors import NotFoundError, UserError
from pfp_mlops.domain.rollback_policy import check_target, previous_production


@pytest.mark.parametrize(
    ("history", "current", "expected"),
    [([1, 2], 2, 1), ([1, 2, 3], 3, 2), ([1, 2, 1], 1, 2), ([1, 2, 3, 2], 2, 3), ([4], None, 4)],
)
def test_previous_production(history, current, expected):
    """It walks the production history back to the first version that is not the current one."""
    assert previous_production(history, current) == expected


def test_no_previous_version():
    """It says so when there is nothing to roll back to."""
    with pytest.raises(NotFoundError):
        previous_production([3], 3)


def test_rejected_target_needs_force():
    """It refuses a rejected version unless forced, and the same version as production."""
    with pytest.raises(UserError):
        check_target(2, 3, "rejected", force=False)
    assert check_target(2, 3, "rejected", force=True)
    with pytest.raises(UserError):
        check_target(3, 3, "production", force=True)
