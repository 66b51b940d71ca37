"""The layers contract (pyproject.toml, ``[tool.importlinter]``): imports only flow down the pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)


def test_layers_contract_is_kept():
    result = _lint("--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract can fail: a config whose layers are upside down is reported broken."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    start = text.index("[tool.importlinter]")
    config = text[start:].replace('"brightscan.policy",\n', "").replace(
        '"brightscan.cli",\n', '"brightscan.cli",\n    "brightscan.policy",\n', 1)
    (tmp_path / "contract.toml").write_text(config, encoding="utf-8")
    result = _lint("--no-cache", "--config", str(tmp_path / "contract.toml"))
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout + result.stderr


def _private_imports(package: str) -> list[str]:
    """``module: name`` for every private name a module of ``package`` imports from another module."""
    import ast

    found = []
    for path in sorted((ROOT / "src" / "brightscan" / package).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("brightscan"):
                found += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_distributed_imports_no_private_name():
    """The cluster code uses the library's public API only, so it cannot drift from a private copy."""
    assert _private_imports("distributed") == []
    assert _private_imports("cli") == []
