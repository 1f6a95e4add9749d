"""Sizing of gunicorn worker pools."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: gunicorn_workers
short_description: Number of gunicorn sync workers for a host's vCPUs
description:
  - Returns gunicorn's recommended C(2 * vcpus + 1) sync workers, bounded by
    O(minimum) and O(maximum) so that a tiny host still serves concurrent
    requests and a large one does not exhaust memory or database connections.
positional: _input
options:
  _input:
    description: Number of vCPUs of the host (C(ansible_processor_vcpus)).
    type: int
    required: true
  minimum:
    description: Smallest number of workers.
    type: int
    default: 2
  maximum:
    description: Largest number of workers.
    type: int
    default: 12
"""

EXAMPLES = r"""
gunicorn_workers: "{{ ansible_processor_vcpus | ocpizza_gunicorn_workers }}"
"""

RETURN = r"""
_value:
  description: The number of workers.
  type: int
"""


def _as_int(value: Any, what: str) -> int:
    error = f"ocpizza_gunicorn_workers: {what} must be an integer, got {value!r}"
    if isinstance(value, bool):
        raise AnsibleFilterError(error)
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(error) from exc
    if not isinstance(value, int) and str(number) != str(value).strip():
        raise AnsibleFilterError(error)
    return number


def gunicorn_workers(vcpus: Any, minimum: int = 2, maximum: int = 12) -> int:
    """Return ``2 * vcpus + 1`` bounded to ``[minimum, maximum]``."""
    cpus = _as_int(vcpus, "vcpus")
    low = _as_int(minimum, "minimum")
    high = _as_int(maximum, "maximum")
    if cpus < 1:
        raise AnsibleFilterError(f"ocpizza_gunicorn_workers: vcpus must be >= 1, got {cpus}")
    if low < 1 or high < low:
        raise AnsibleFilterError(
            f"ocpizza_gunicorn_workers: need 1 <= minimum <= maximum, got {low} and {high}"
        )
    return max(low, min(high, 2 * cpus + 1))


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        """Map filter names to functions."""
        return {"ocpizza_gunicorn_workers": gunicorn_workers}
