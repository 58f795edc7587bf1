"""Shared test settings. Live-server fixtures live in tests/live/conftest.py; the Pulumi harness in tests/harness.py."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_ENV = REPO / "examples" / ".env.example"


@pytest.fixture
def repo() -> Path:
    return REPO
