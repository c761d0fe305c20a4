#!/usr/bin/env bash
# Install everything the tests need and run the whole suite:
#   web-ext lint on the Firefox package (Node for this step only),
#   ruff, mypy --strict, and pytest (store contract suite on SQLite and on MongoDB over the
#   wire, API, integrations against fake providers, extension end-to-end in Chromium).
# MongoDB: TT_TEST_MONGODB_URL when set, else the mongoeco wire server (Python >= 3.13).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test

# Debian's Chromium for the extension tests (never a downloaded browser build).
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# The MongoDB wire test server runs in its own Python >= 3.13 virtualenv.
if [ -z "${TT_TEST_MONGODB_URL:-}" ]; then
  if [ ! -x .venv-mongo/bin/python ]; then
    PY313=""
    for candidate in python3.13 python3.14; do
      if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 13))' >/dev/null 2>&1; then
        PY313=$candidate; break
      fi
    done
    if [ -z "$PY313" ] && command -v pyenv >/dev/null 2>&1; then
      for dir in "$(pyenv root)"/versions/3.1[3-9]*; do
        if [ -x "$dir/bin/python3" ]; then PY313="$dir/bin/python3"; fi
      done
    fi
    if [ -z "$PY313" ]; then
      echo "Python >= 3.13 is needed for the mongoeco test server (or set TT_TEST_MONGODB_URL)" >&2
      exit 1
    fi
    "$PY313" -m venv .venv-mongo
  fi
  if [ ! -f .venv-mongo/.installed ]; then
    .venv-mongo/bin/python -m pip install --quiet --disable-pip-version-check \
      "mongoeco[wire]>=4.11,<5"
    touch .venv-mongo/.installed
  fi
fi

# Mozilla's web-ext lints the Firefox package; Node is needed for this step only (the
# server and its tests never use it). Versions are pinned by tools/firefox-lint's lock file.
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
npm ci --prefix tools/firefox-lint --no-audit --no-fund --loglevel=error
echo "== web-ext lint (Firefox package)"
.venv/bin/python extension/package_firefox.py
tools/firefox-lint/node_modules/.bin/web-ext lint --source-dir extension/dist/firefox --output text

echo "== ruff"
.venv/bin/ruff check server tests bench
.venv/bin/ruff format --check server tests bench
echo "== mypy --strict server"
.venv/bin/mypy --strict server
echo "== pytest"
.venv/bin/python -m pytest -ra "$@"
