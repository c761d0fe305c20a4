"""Debian's Chromium for the browser tests (extension and web app): where it is, the
flags every run uses, and what a run without it does (fail in CI, skip elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def require_chromium(items: list[pytest.Item], keyword: str, what: str) -> None:
    """Marks the ``keyword`` tests skipped without Chromium; in CI they must run."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        # In CI the browser tests must run: scripts/test.sh installs Chromium.
        raise pytest.UsageError(f"{CHROMIUM} is not installed: the {what} tests cannot run")
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is not installed (run scripts/test.sh)")
    for item in items:
        if keyword in item.keywords:
            item.add_marker(skip)
