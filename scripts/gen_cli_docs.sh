#!/usr/bin/env bash
# Regenerate docs/cli.md from the CLI itself (Typer's doc generator), so the reference never drifts.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m typer brightscan.cli.main utils docs --name brightscan --title "brightscan CLI reference" --output docs/cli.md
