"""The verdict end to end from the CLI on the committed fixtures: first in text and Markdown,
``roots[].verdict`` in JSON, built from the same model numbers in every format."""

from __future__ import annotations

import json

from repo_paths import FIXTURES, REPO
from typer.testing import CliRunner

from tailscope.cli.app import app


def _analyze(name: str, fmt: str) -> str:
    result = CliRunner().invoke(app, ["analyze", str(FIXTURES / name), "--format", fmt, "--quiet"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_demo_verdict_in_json_text_and_markdown() -> None:
    document = json.loads(_analyze("gc-cascade.jsonl.gz", "json"))
    assert document["schema_version"] == 2
    (root,) = document["roots"]
    verdict = root["verdict"]
    assert verdict["status"] == "conclusive"
    top = verdict["top"]
    assert (top["hop_service"], top["component"]) == ("inventory", "stall")
    lo, hi = top["tail_share_ci"]
    assert 0.5 < lo <= top["tail_share"] <= hi
    # the top hop's interval clears the runner-up's (that is what conclusive means)
    hops = [h for h in document["hops"] if h["root_operation"] == root["operation"]]
    assert hops[0]["component"] == "stall" and hops[1]["tail_share_ci"][1] < lo
    # the stall hop names the detector's stalls of inventory
    assert hops[0]["stall_ids"]
    assert {document["stalls"][i]["service"] for i in hops[0]["stall_ids"]} == {"inventory"}
    (paused,) = verdict["paused_services"]
    assert paused["service"] == "inventory" and paused["language"] == "java"
    assert verdict["stall_tail_share_ci"][0] > 0.5
    # no network hop owns any real part of the tail any more
    assert max(h["tail_share"] for h in hops if h["component"] == "network") < 0.05

    text = _analyze("gc-cascade.jsonl.gz", "text")
    head = " ".join(text.split("34,669 spans")[0].split()[3:])  # the verdict, line-wrapped
    assert head == " ".join(f"Verdict frontend POST /api/checkout: {verdict['text']}".split())
    markdown = _analyze("gc-cascade.jsonl.gz", "markdown").splitlines()
    assert markdown[2] == f"**Verdict** frontend POST /api/checkout: {verdict['text']}"


def test_slow_dependency_is_dependency_not_stall() -> None:
    document = json.loads(_analyze("slow-dependency.jsonl.gz", "json"))
    (root,) = document["roots"]
    verdict = root["verdict"]
    assert verdict["status"] == "conclusive"
    assert verdict["top"]["component"] == "dependency"
    assert verdict["top"]["hop_operation"] == "POST"  # the payment API
    assert "None of the tail is spent behind a detected stop-the-world pause." in verdict["text"]


def test_readme_quotes_the_demo_verdict_as_printed() -> None:
    """The README's quickstart shows the demo's verdict; it must be what tailscope prints now."""
    readme = " ".join((REPO / "README.md").read_text().split())
    (root,) = json.loads(_analyze("gc-cascade.jsonl.gz", "json"))["roots"]
    quoted = f"Verdict {root['service']} {root['operation']}: {root['verdict']['text']}"
    assert " ".join(quoted.split()) in readme
