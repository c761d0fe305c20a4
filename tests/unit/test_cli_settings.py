"""Settings parsing, secret masking and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.settings import Settings
from tests.conftest import ROOT


def test_settings_defaults_and_secret_masking() -> None:
    settings = Settings(
        database_url="mongodb://user:pw@db.example/tasktimer",
        secret_key="super-secret-key",
        bootstrap_admin_password="admin-password",
        asana_client_secret="asana-secret",
    )
    text = repr(settings) + str(settings)
    for secret in ("super-secret-key", "admin-password", "asana-secret", "user:pw"):
        assert secret not in text
    assert settings.is_mongo
    assert Settings().effective_public_url == "http://127.0.0.1:8080"
    assert Settings(database_url="sqlite:////abs/x.db").sqlite_path == Path("/abs/x.db")
    assert Settings(database_url="sqlite:///rel/x.db").sqlite_path == Path("rel/x.db")
    with pytest.raises(ValueError):
        _ = Settings(database_url="postgres://x").sqlite_path


def run_cli(tmp_path: Path, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "TT_ADMIN_PASSWORD": password,
        "TT_PASSWORD_MEMORY_KIB": "1024",
        "TT_PASSWORD_TIME_COST": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_create_admin_command(tmp_path: Path) -> None:
    first = run_cli(tmp_path, "create-admin", "--email", "a@example.com", password="password-1")
    assert first.returncode == 0 and "admin a@example.com created" in first.stdout
    second = run_cli(tmp_path, "create-admin", "--email", "b@example.com", password="password-2")
    assert second.returncode == 0
    again = run_cli(tmp_path, "create-admin", "--email", "b@example.com", password="password-3")
    assert again.returncode != 0 and "already exists" in again.stderr
    short = run_cli(tmp_path, "create-admin", "--email", "c@example.com", password="short")
    assert short.returncode != 0 and "8 characters" in short.stderr
    assert "password-1" not in first.stdout + first.stderr
