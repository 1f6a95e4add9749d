from __future__ import annotations

import hashlib
import importlib.util
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from types import ModuleType

from django.conf import settings
from django.test import SimpleTestCase

SCRIPT = Path(settings.BASE_DIR) / "scripts" / "make_sample_resources.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample_resources", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SampleResourcesTests(SimpleTestCase):
    def test_generation_is_reproducible_and_matches_the_committed_file(self) -> None:
        script = load_script()
        first = script.build_workbook_bytes()
        second = script.build_workbook_bytes()
        self.assertEqual(hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest())
        committed = script.DEFAULT_OUTPUT.read_bytes()
        self.assertEqual(
            hashlib.sha256(first).hexdigest(),
            hashlib.sha256(committed).hexdigest(),
            "resources/ocpizza-resources.xlsx is stale: run scripts/make_sample_resources.py",
        )
        with redirect_stdout(StringIO()) as out:
            self.assertEqual(script.main(["--check"]), 0)
        self.assertIn("is up to date", out.getvalue())
