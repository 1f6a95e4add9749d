from __future__ import annotations

import pytest
from ocpizza_time import FilterModule, utc_time


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2026-11-29 14:03:00", "2026-11-29 14:03:00"),
        ("2026-11-29T14:03:00", "2026-11-29 14:03:00"),
        ("  2028-02-29 23:59:59 ", "2028-02-29 23:59:59"),
    ],
)
def test_a_calendar_time_is_returned_normalised(typed, expected):
    assert utc_time(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        "2026-11-31 14:03:00",  # November has 30 days: the shape alone passes it
        "2027-02-29 00:00:00",  # not a leap year
        "2026-13-01 00:00:00",
        "2026-11-29 24:00:00",
        "2026-11-29 14:60:00",
        "2026-11-29",
        "2026-11-29 14:03",
        "2026-11-29X14:03:00",
        "29/11/2026 14:03:00",
        "",
        None,
        20261129,
    ],
)
def test_anything_else_is_refused_with_an_empty_string(typed):
    assert utc_time(typed) == ""


def test_the_filter_is_registered():
    assert FilterModule().filters()["ocpizza_utc_time"] is utc_time
