"""docs/gating.md: its CI examples are valid YAML and call the gate the way it really works."""

from __future__ import annotations

import re
from typing import Any

import yaml
from repo_paths import DOCS as _DOCS

DOC = _DOCS / "gating.md"


def _yaml_blocks() -> list[Any]:
    text = DOC.read_text(encoding="utf-8")
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]


def test_ci_examples_are_valid_and_complete() -> None:
    github, gitlab = _yaml_blocks()
    # GitHub Actions: triggers on main and pull requests; baseline on main, gate on PRs
    assert set(github[True]) == {"push", "pull_request"}  # YAML 1.1 reads "on" as True
    steps = github["jobs"]["load-test"]["steps"]
    runs = " ".join(step.get("run", "") for step in steps)
    assert "tailscope baseline traces/ -o baseline.json" in runs
    assert "tailscope gate traces/ --baseline baseline.json" in runs
    # GitLab: a baseline job on the default branch and a gate job reporting JUnit
    assert gitlab["latency-baseline"]["artifacts"]["paths"] == ["baseline.json"]
    gate = gitlab["latency-gate"]
    assert gate["artifacts"]["reports"]["junit"] == "gate.xml"
    assert any("--format junit -o gate.xml" in line for line in gate["script"])


def test_documented_gate_options_exist() -> None:
    from typer.testing import CliRunner

    import tailscope.cli  # noqa: F401  registers every command on the app
    from tailscope.cli.app import app

    help_text = CliRunner().invoke(app, ["gate", "--help"], env={"COLUMNS": "200"}).output
    documented = set(re.findall(r"^\| `(--[a-z-]+)", DOC.read_text(encoding="utf-8"), re.M))
    assert len(documented) >= 12
    assert sorted(o for o in documented if o not in help_text) == []
