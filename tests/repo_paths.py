"""Where the tests' inputs live: all inside this repository (a fresh clone has no ``../shared``).

Importable from every test folder (``pythonpath = ["tests"]`` in pyproject.toml), so paths can be
used in ``pytest.mark.parametrize`` at import time; ``conftest.py`` offers the same as fixtures.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
DATA = REPO / "tests" / "data"
CORPUS = DATA / "corpus"
"""Public trace files written by other tools (see ``CORPUS / "SOURCES.md"``)."""
OTLP_CORPUS = CORPUS / "otlp"
GATE_SCENARIO = DATA / "gate-scenario.toml"
DOCS = REPO / "docs"
