"""Sizing and input checks for the MySQL/MariaDB server."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ocpizza_innodb_buffer_pool_size
short_description: InnoDB buffer pool size for a dedicated database host
description:
  - Returns a C(innodb_buffer_pool_size) in MiB for a host whose main job is
    the database: O(share) of its memory, rounded down to the 128 MiB chunk
    InnoDB allocates in, at least O(minimum_mb), at most O(maximum_mb) (when
    not 0) and at most the memory minus O(reserve_mb) kept for the system,
    the connections' buffers and the page cache.
  - "The companion filters live in the same file:
    C(ocpizza_mysql_max_connections) (a list of the app servers' gunicorn
    worker counts -> C(max_connections): C(sum * per_worker + headroom),
    bounded by C(minimum) and C(maximum); C(per_worker=2) because a graceful
    gunicorn reload runs the old and the new workers side by side),
    C(ocpizza_valid_bind_address) (true for an IPv4/IPv6 address or a host
    name) and C(ocpizza_is_ip_address) (true for an IPv4/IPv6 address only)."
positional: _input
options:
  _input:
    description: Memory of the host in MiB (C(ansible_memtotal_mb)).
    type: int
    required: true
  share:
    description: Share of the memory given to the pool, between 0.1 and 0.9.
    type: float
    default: 0.6
  minimum_mb:
    description: Smallest pool.
    type: int
    default: 128
  maximum_mb:
    description: Largest pool (rounded down to 128 MiB); 0 sets no cap.
    type: int
    default: 0
  reserve_mb:
    description: Memory never given to the pool.
    type: int
    default: 1024
"""

EXAMPLES = r"""
# 8 GB database server of the operations document (7960 MiB seen by Linux) -> 4736
mysql_innodb_buffer_pool_size_mb: "{{ ansible_memtotal_mb | ocpizza_innodb_buffer_pool_size }}"
# Capped, for a host that shares its memory with something else
pool_mb: "{{ ansible_memtotal_mb | ocpizza_innodb_buffer_pool_size(share=0.5, maximum_mb=2048) }}"
# One app server with 2 vCPUs (5 workers): 5 * 2 + 20 = 30, raised to the minimum 50
mysql_max_connections: "{{ [5] | ocpizza_mysql_max_connections }}"
valid: "{{ mysql_bind_address | ocpizza_valid_bind_address }}"
is_ip: "{{ '10.0.0.21' | ocpizza_is_ip_address }}"
"""

RETURN = r"""
_value:
  description: Pool size in MiB (a multiple of 128).
  type: int
"""

import ipaddress
import re
from typing import Any

from ansible.errors import AnsibleFilterError

CHUNK_MB = 128
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


def _int(value: Any, name: str, filter_name: str) -> int:
    error = f"{filter_name}: {name} must be an integer, got {value!r}"
    if isinstance(value, bool) or value is None:
        raise AnsibleFilterError(error)
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise AnsibleFilterError(error) from exc


def innodb_buffer_pool_size(
    memtotal_mb: Any,
    share: Any = 0.6,
    minimum_mb: Any = 128,
    maximum_mb: Any = 0,
    reserve_mb: Any = 1024,
) -> int:
    """Return the buffer pool size in MiB for a dedicated database host.

    ``share`` of the memory, capped by the memory minus ``reserve_mb`` and by
    ``maximum_mb`` (0: no cap), rounded down to 128 MiB, at least ``minimum_mb``.
    """
    name = "ocpizza_innodb_buffer_pool_size"
    mem = _int(memtotal_mb, "memtotal_mb", name)
    if mem < 256:
        raise AnsibleFilterError(f"{name}: memtotal_mb must be at least 256, got {mem}")
    try:
        ratio = float(share)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"{name}: share must be a number, got {share!r}") from exc
    if isinstance(share, bool) or not 0.1 <= ratio <= 0.9:
        raise AnsibleFilterError(f"{name}: share must be between 0.1 and 0.9, got {share!r}")
    low = _int(minimum_mb, "minimum_mb", name)
    high = _int(maximum_mb, "maximum_mb", name)
    reserve = _int(reserve_mb, "reserve_mb", name)
    if low < CHUNK_MB or high < 0 or (high and high < low) or reserve < 0:
        raise AnsibleFilterError(
            f"{name}: need {CHUNK_MB} <= minimum_mb <= maximum_mb (or maximum_mb 0) and "
            f"reserve_mb >= 0, got {low}, {high} and {reserve}"
        )
    wanted = min(mem * ratio, mem - reserve)
    if high:
        wanted = min(wanted, high)
    size = int(wanted // CHUNK_MB) * CHUNK_MB
    return max(low, size)


def mysql_max_connections(
    workers: Any, per_worker: Any = 2, headroom: Any = 20, minimum: Any = 50, maximum: Any = 1000
) -> int:
    """Connections for every gunicorn worker of every app server, plus headroom.

    ``workers`` is the list of worker counts of the app servers (one entry per
    host). Django keeps at most one connection per worker; ``per_worker=2``
    covers a graceful reload, when the old and the new workers run side by
    side. The headroom covers the operators, the backup, migrations and
    management commands. The result is bounded to ``[minimum, maximum]``.
    """
    name = "ocpizza_mysql_max_connections"
    if isinstance(workers, (str, bytes, dict)) or not hasattr(workers, "__iter__"):
        raise AnsibleFilterError(f"{name}: expects a list of worker counts, got {workers!r}")
    counts = [_int(w, "worker count", name) for w in workers]
    if any(c < 1 for c in counts):
        raise AnsibleFilterError(f"{name}: worker counts must be >= 1, got {counts}")
    each = _int(per_worker, "per_worker", name)
    extra = _int(headroom, "headroom", name)
    low = _int(minimum, "minimum", name)
    high = _int(maximum, "maximum", name)
    if each < 1 or extra < 0 or low < 1 or high < low:
        raise AnsibleFilterError(
            f"{name}: need per_worker >= 1, headroom >= 0 and 1 <= minimum <= maximum, "
            f"got {each}, {extra}, {low} and {high}"
        )
    return max(low, min(high, sum(counts) * each + extra))


def is_ip_address(value: Any) -> bool:
    """True for an IPv4 or IPv6 address (what a grant needs with skip-name-resolve)."""
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return True


def valid_bind_address(value: Any) -> bool:
    """True for an IPv4/IPv6 address (0.0.0.0 and :: included) or a host name."""
    if not isinstance(value, str) or not value.strip():
        return False
    text = value.strip()
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", text):
        return False  # looks like an IPv4 address but is not one (10.0.0.300)
    return bool(_HOSTNAME.match(text))


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        """Map filter names to functions."""
        return {
            "ocpizza_innodb_buffer_pool_size": innodb_buffer_pool_size,
            "ocpizza_mysql_max_connections": mysql_max_connections,
            "ocpizza_valid_bind_address": valid_bind_address,
            "ocpizza_is_ip_address": is_ip_address,
        }
