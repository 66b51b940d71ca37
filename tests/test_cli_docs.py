"""docs/cli.md is generated from the CLI itself and must not drift from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_cli_reference_is_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    subprocess.run(
        [sys.executable, "-m", "typer", "brightscan.cli.main", "utils", "docs", "--name", "brightscan",
         "--title", "brightscan CLI reference", "--output", str(out)],
        check=True, capture_output=True, cwd=REPO,
    )
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == committed, "docs/cli.md is stale: run scripts/gen_cli_docs.sh"
