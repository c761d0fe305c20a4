#!/usr/bin/env bash
# Install and run the server on the embedded SQLite default (./tasktimer.db).
# Settings come from TT_* environment variables (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m server "$@"
