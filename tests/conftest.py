"""Fixtures shared by the unit and end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from repo_paths import CORPUS, FIXTURES, REPO


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository's root."""
    return REPO


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The public corpus copied into the repository (``tests/data/corpus``)."""
    return CORPUS


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The bundled simulated exports (``fixtures/``)."""
    return FIXTURES
