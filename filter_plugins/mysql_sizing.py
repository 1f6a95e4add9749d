"""Sizing and input checks for the MySQL/MariaDB server."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ocpizza_innodb_buffer_pool_size
short_description: InnoDB buffer pool size for a dedicated database host
description:
  - Returns a C(innodb_buffer_pool_size) in MiB for a host whose main job is
    the database: O(share) of its memory, rounded down to the 128 MiB chunk
    InnoDB allocates in, at least O(minimum_mb) and at most the memory minus
    O(reserve_mb) kept for the system, connections and the page cache.
  - The companion filters C(ocpizza_mysql_max_connections) (connections from
    the app servers' gunicorn workers plus headroom, bounded) and
    C(ocpizza_valid_bind_address) (an IP address or host name) live in the
    same file.
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
  reserve_mb:
    description: Memory never given to the pool.
    type: int
    default: 1024
"""

EXAMPLES = r"""
mysql_innodb_buffer_pool_size: "{{ ansible_memtotal_mb | ocpizza_innodb_buffer_pool_size }}M"
mysql_max_connections: "{{ [5, 5] | ocpizza_mysql_max_connections }}"
valid: "{{ mysql_bind_address | ocpizza_valid_bind_address }}"
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
    memtotal_mb: Any, share: float = 0.6, minimum_mb: int = 128, reserve_mb: int = 1024
) -> int:
    """Return the buffer pool size in MiB for a dedicated database host."""
    name = "ocpizza_innodb_buffer_pool_size"
    mem = _int(memtotal_mb, "memtotal_mb", name)
    if mem < 256:
        raise AnsibleFilterError(f"{name}: memtotal_mb must be at least 256, got {mem}")
    if not 0.1 <= float(share) <= 0.9:
        raise AnsibleFilterError(f"{name}: share must be between 0.1 and 0.9, got {share}")
    wanted = min(mem * float(share), mem - _int(reserve_mb, "reserve_mb", name))
    size = int(wanted // CHUNK_MB) * CHUNK_MB
    return max(_int(minimum_mb, "minimum_mb", name), size)


def mysql_max_connections(
    workers: Any, per_worker: int = 1, headroom: int = 20, minimum: int = 50, maximum: int = 1000
) -> int:
    """Connections for every gunicorn worker of every app server, plus headroom.

    ``workers`` is the list of worker counts of the app servers (one entry per
    host). Django keeps at most one connection per worker thread; the headroom
    covers the operators, the backup, migrations and management commands.
    """
    name = "ocpizza_mysql_max_connections"
    if isinstance(workers, (str, bytes)) or not hasattr(workers, "__iter__"):
        raise AnsibleFilterError(f"{name}: expects a list of worker counts, got {workers!r}")
    counts = [_int(w, "worker count", name) for w in workers]
    if any(c < 1 for c in counts):
        raise AnsibleFilterError(f"{name}: worker counts must be >= 1, got {counts}")
    total = sum(counts) * _int(per_worker, "per_worker", name) + _int(headroom, "headroom", name)
    return max(_int(minimum, "minimum", name), min(_int(maximum, "maximum", name), total))


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
        }
