"""What exists of an environment: its droplets by name, and waiting for them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from .client import DigitalOceanClient, DropletInfo
from .errors import ProvisioningError, ProvisioningTimeout
from .spec import EnvironmentSpec


class EnvironmentState:
    """Reads an environment's droplets; the base of the reconciler and the teardown."""

    def __init__(
        self,
        client: DigitalOceanClient,
        spec: EnvironmentSpec,
        check_mode: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.spec = spec
        self.check_mode = check_mode
        self.clock = clock
        self.warnings: list[str] = []

    # -- reading ------------------------------------------------------------

    def managed_droplets(self) -> list[DropletInfo]:
        """The droplets of this environment that this project manages."""
        return [
            d
            for d in self.client.droplets(self.spec.environment_tag)
            if self.spec.project in d.tags
        ]

    def by_name(self, droplets: list[DropletInfo]) -> dict[str, DropletInfo]:
        """Droplets by name; several sharing one name stop the run (never guess which)."""
        found: dict[str, list[DropletInfo]] = {}
        for droplet in droplets:
            found.setdefault(droplet.name, []).append(droplet)
        duplicates = {name: same for name, same in found.items() if len(same) > 1}
        if duplicates:
            listing = "; ".join(
                f"{name}: ids {', '.join(str(d.id) for d in same)}"
                for name, same in sorted(duplicates.items())
            )
            raise ProvisioningError(
                f"Several droplets share a name in environment {self.spec.environment} "
                f"({listing}). They were not made by this module, which never duplicates; "
                "delete the extra ones by hand, then run again."
            )
        return {name: same[0] for name, same in found.items()}

    @staticmethod
    def price(sizes: Mapping[str, Mapping[str, object]], size_slug: str) -> float:
        """Monthly price of a size (0 for a size the catalogue no longer lists)."""
        return float((sizes.get(size_slug) or {}).get("price_monthly") or 0.0)  # type: ignore[arg-type]

    # -- waiting ------------------------------------------------------------

    def _pause(self) -> None:
        self.client.settings.sleep(self.spec.poll_interval)

    def _follow_actions(self, pending: dict[str, int]) -> None:
        """Forget the create actions that completed; fail on one that errored."""
        for name, action_id in list(pending.items()):
            status = self.client.action(action_id).get("status")
            if status == "errored":
                raise ProvisioningError(
                    f"DigitalOcean reports that creating droplet {name} failed (action "
                    f"{action_id} errored). Delete it with deprovision.yml or by hand, "
                    "then run again."
                )
            if status == "completed":
                del pending[name]

    def wait_active(self, names: list[str], actions: Mapping[str, int]) -> list[DropletInfo]:
        """Poll until every named droplet is active with addresses; fail at the deadline."""
        deadline = self.clock() + self.spec.wait_timeout
        pending = dict(actions)
        while True:
            current = self.by_name(self.managed_droplets())
            missing = [n for n in names if n not in current]
            if missing:
                raise ProvisioningError(
                    f"droplets {', '.join(missing)} disappeared while waiting for them"
                )
            waiting = [
                current[n]
                for n in names
                if current[n].status != "active" or not current[n].public_ipv4
            ]
            self._follow_actions(pending)
            if not waiting:
                return [current[n] for n in names]
            if self.clock() >= deadline:
                listing = ", ".join(f"{d.name} ({d.status})" for d in waiting)
                raise ProvisioningTimeout(
                    f"droplets not active after {self.spec.wait_timeout:g} s: {listing}. Run "
                    "again: the droplets exist and the next run waits for them instead of "
                    "creating more."
                )
            self._pause()

    def wait_gone(self, names: list[str]) -> None:
        """Poll until none of the named droplets is listed any more."""
        deadline = self.clock() + self.spec.wait_timeout
        while True:
            left = [d.name for d in self.managed_droplets() if d.name in names]
            if not left:
                return
            if self.clock() >= deadline:
                raise ProvisioningTimeout(
                    f"droplets still present {self.spec.wait_timeout:g} s after deletion: "
                    f"{', '.join(left)}. Run deprovision again."
                )
            self._pause()
