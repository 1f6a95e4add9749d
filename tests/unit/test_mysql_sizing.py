from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from mysql_sizing import (
    FilterModule,
    innodb_buffer_pool_size,
    is_ip_address,
    mysql_max_connections,
    valid_bind_address,
)
from ocpizza_gunicorn import gunicorn_workers


@pytest.mark.parametrize(
    ("mem", "expected"),
    [
        (8192, 4864),  # the operations document's 8 GB db server: 60 %, 128 MiB chunks
        (7960, 4736),  # what Linux reports on that droplet
        (4096, 2432),
        (2048, 1024),  # the 1 GiB reserve wins over 60 %
        (1024, 128),  # tiny host: the minimum
        (65536, 39296),
    ],
)
def test_buffer_pool_share_reserve_and_chunks(mem, expected):
    size = innodb_buffer_pool_size(mem)
    assert size == expected
    assert size % 128 == 0
    assert size <= max(mem - 1024, 128)


def test_buffer_pool_share_is_configurable_and_bounded():
    assert innodb_buffer_pool_size(8192, share=0.5) == 4096
    assert innodb_buffer_pool_size("8192", share="0.5") == 4096  # facts and -e values
    with pytest.raises(AnsibleFilterError, match="share"):
        innodb_buffer_pool_size(8192, share=0.95)
    with pytest.raises(AnsibleFilterError, match="share"):
        innodb_buffer_pool_size(8192, share="most")


def test_buffer_pool_maximum_caps_and_is_rounded_to_chunks():
    assert innodb_buffer_pool_size(65536, maximum_mb=8192) == 8192
    assert innodb_buffer_pool_size(24105, maximum_mb=400) == 384
    assert innodb_buffer_pool_size(8192, maximum_mb=0) == 4864  # 0: no cap
    assert innodb_buffer_pool_size(1024, minimum_mb=256, maximum_mb=512) == 256


def test_buffer_pool_reserve_is_configurable():
    assert innodb_buffer_pool_size(2048, reserve_mb=512) == 1152
    assert innodb_buffer_pool_size(2048, share=0.9, reserve_mb=0) == 1792


@pytest.mark.parametrize("bad", [None, "lots", True, 100, "2.5"])
def test_buffer_pool_refuses_bad_memory(bad):
    with pytest.raises(AnsibleFilterError, match="memtotal_mb"):
        innodb_buffer_pool_size(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"minimum_mb": 64},
        {"maximum_mb": -1},
        {"minimum_mb": 1024, "maximum_mb": 512},
        {"reserve_mb": -5},
    ],
)
def test_buffer_pool_refuses_inconsistent_bounds(kwargs):
    with pytest.raises(AnsibleFilterError, match="minimum_mb"):
        innodb_buffer_pool_size(8192, **kwargs)


def test_max_connections_from_workers():
    assert mysql_max_connections([5]) == 50  # 5 * 2 + 20 = 30: the minimum
    assert mysql_max_connections([12, 12, 12, 12]) == 116  # 48 workers * 2 + 20
    assert mysql_max_connections([12] * 100) == 1000  # the maximum
    assert mysql_max_connections([5, 5], per_worker=4, headroom=10) == 50
    assert mysql_max_connections([9, 9], per_worker=4, headroom=10) == 82
    assert mysql_max_connections([5], minimum=10) == 30
    assert mysql_max_connections([]) == 50  # no app server yet


def test_max_connections_from_the_app_servers_vcpus():
    # What the role computes: each app server's vCPUs -> gunicorn workers -> connections.
    workers = [gunicorn_workers(v) for v in (2, 2, 4)]  # 5, 5, 9
    assert mysql_max_connections(workers, minimum=1) == (5 + 5 + 9) * 2 + 20


@pytest.mark.parametrize("bad", ["5", 5, [0], ["x"], {"a": 1}, None])
def test_max_connections_refuses_bad_input(bad):
    with pytest.raises(AnsibleFilterError, match="ocpizza_mysql_max_connections"):
        mysql_max_connections(bad)


@pytest.mark.parametrize(
    "kwargs", [{"per_worker": 0}, {"headroom": -1}, {"minimum": 0}, {"minimum": 10, "maximum": 5}]
)
def test_max_connections_refuses_inconsistent_bounds(kwargs):
    with pytest.raises(AnsibleFilterError, match="need per_worker"):
        mysql_max_connections([5], **kwargs)


@pytest.mark.parametrize(
    "addr", ["10.0.0.5", "0.0.0.0", "::", "fd00::1", "db1.internal", "localhost"]
)
def test_valid_bind_addresses(addr):
    assert valid_bind_address(addr)


@pytest.mark.parametrize(
    "addr", ["10.0.0.300", "not an ip!", "", None, "1.2.3", "-bad.example", 42]
)
def test_invalid_bind_addresses(addr):
    assert not valid_bind_address(addr)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.89.0.4", True),
        ("fd00::21", True),
        ("ocpizza-app1", False),
        ("10.0.0.300", False),
        ("10.0.%", False),
        ("", False),
        (None, False),
        (10, False),
    ],
)
def test_is_ip_address(value, expected):
    assert is_ip_address(value) is expected


def test_registered():
    assert FilterModule().filters() == {
        "ocpizza_innodb_buffer_pool_size": innodb_buffer_pool_size,
        "ocpizza_mysql_max_connections": mysql_max_connections,
        "ocpizza_valid_bind_address": valid_bind_address,
        "ocpizza_is_ip_address": is_ip_address,
    }
