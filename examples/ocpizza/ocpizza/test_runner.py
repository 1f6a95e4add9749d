"""Test runner whose output ends with unittest's summary ("Ran N tests ... OK")."""

from __future__ import annotations

from typing import Any

from django.test.runner import DiscoverRunner


class QuietTeardownRunner(DiscoverRunner):
    """Django's runner, minus the "Destroying test database" line after the summary."""

    def teardown_databases(self, old_config: Any, **kwargs: Any) -> None:
        from django.test.utils import teardown_databases

        teardown_databases(old_config, verbosity=0, parallel=self.parallel, keepdb=self.keepdb)
