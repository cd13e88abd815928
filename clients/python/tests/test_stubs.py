"""The checked-in stubs are what the project's .proto generates today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "generate_stubs.py"


def test_the_generated_stubs_are_current() -> None:
    spec = importlib.util.spec_from_file_location("generate_stubs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    diffs = module.differences()
    assert not diffs, (
        "stubs not current with the .proto: run python clients/python/scripts/generate_stubs.py\n"
        + "\n".join(d[:3000] for d in diffs)
    )
