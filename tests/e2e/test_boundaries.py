"""The layering is enforced mechanically: the core never imports textual or the CLI."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import tailscope

CORE = sorted(
    m.name
    for m in pkgutil.walk_packages(tailscope.__path__, "tailscope.")
    if not m.name.startswith(("tailscope.cli", "tailscope.tui", "tailscope.__main__"))
)


def test_core_modules_found() -> None:
    assert "tailscope.schema" in CORE
    assert "tailscope.histogram" in CORE


def test_core_imports_neither_textual_nor_cli() -> None:
    # GIVEN a fresh interpreter WHEN every core module is imported
    code = (
        "import importlib, sys\n"
        f"for name in {CORE!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.')"
        " or m.startswith('tailscope.cli') or m.startswith('tailscope.tui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # THEN neither textual nor the CLI nor the TUI was pulled in
    assert out.stdout.strip() == ""


def test_only_tui_package_imports_textual() -> None:
    import pathlib

    root = pathlib.Path(tailscope.__file__).parent
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "tui" not in p.relative_to(root).parts
        and any(
            line.strip().startswith(("import textual", "from textual"))
            for line in p.read_text().splitlines()
        )
    ]
    assert offenders == []


def test_cli_help_starts_without_heavy_imports() -> None:
    code = (
        "import sys\n"
        "import tailscope.cli\n"
        "print(','.join(m for m in ('polars', 'pyarrow', 'textual') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
