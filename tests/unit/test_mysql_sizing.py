from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from mysql_sizing import (
    FilterModule,
    innodb_buffer_pool_size,
    mysql_max_connections,
    valid_bind_address,
)


@pytest.mark.parametrize(
    ("mem", "expected"),
    [
        (8192, 4864),   # the operations document's 8 GB db server: 60 %, 128 MiB chunks
        (4096, 2432),
        (2048, 1024),   # the 1 GiB reserve wins over 60 %
        (1024, 128),    # tiny host: the minimum
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
    with pytest.raises(AnsibleFilterError, match="share"):
        innodb_buffer_pool_size(8192, share=0.95)


@pytest.mark.parametrize("bad", [None, "lots", True, 100])
def test_buffer_pool_refuses_bad_memory(bad):
    with pytest.raises(AnsibleFilterError, match="memtotal_mb"):
        innodb_buffer_pool_size(bad)


def test_max_connections_from_workers():
    assert mysql_max_connections([5]) == 50          # minimum
    assert mysql_max_connections([12, 12, 12, 12]) == 68
    assert mysql_max_connections([12] * 100) == 1000  # maximum
    assert mysql_max_connections([5, 5], per_worker=4, headroom=10) == 50
    assert mysql_max_connections([9, 9], per_worker=4, headroom=10) == 82


@pytest.mark.parametrize("bad", ["5", 5, [0], ["x"]])
def test_max_connections_refuses_bad_input(bad):
    with pytest.raises(AnsibleFilterError):
        mysql_max_connections(bad)


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


def test_registered():
    assert set(FilterModule().filters()) == {
        "ocpizza_innodb_buffer_pool_size",
        "ocpizza_mysql_max_connections",
        "ocpizza_valid_bind_address",
    }
