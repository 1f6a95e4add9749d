from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ocpizza_gunicorn import FilterModule, gunicorn_workers


@pytest.mark.parametrize(
    ("vcpus", "expected"),
    [(1, 3), (2, 5), (4, 9), (5, 11), (8, 12), (64, 12), ("2", 5)],
)
def test_workers_follow_2n_plus_1_bounded(vcpus, expected):
    assert gunicorn_workers(vcpus) == expected


def test_bounds_are_configurable():
    assert gunicorn_workers(1, minimum=4) == 4
    assert gunicorn_workers(16, maximum=40) == 33


@pytest.mark.parametrize("bad", [0, -2, "two", None, True, "2.5"])
def test_bad_vcpus_are_refused_with_the_name(bad):
    with pytest.raises(AnsibleFilterError, match="vcpus"):
        gunicorn_workers(bad)


def test_inverted_bounds_are_refused():
    with pytest.raises(AnsibleFilterError, match="minimum <= maximum"):
        gunicorn_workers(2, minimum=8, maximum=4)


def test_registered_name():
    assert FilterModule().filters()["ocpizza_gunicorn_workers"] is gunicorn_workers
