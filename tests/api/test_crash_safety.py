"""A short version of bench/crash_safety.py on both stores: real server processes killed
with SIGKILL during timer and manual-entry traffic; every acknowledged write survives,
no acknowledged stop is reverted, retried Idempotency-Keys never answer 409, at most one
running entry per user, no overlaps, no 5xx."""

from __future__ import annotations

from bench.crash_safety import run


async def test_sigkill_during_traffic_loses_nothing_acknowledged(
    database_url: str, backend_name: str
) -> None:
    result = await run(backend_name, cycles=3, users=3, seed=7, database_url=database_url)
    assert result.problems == []
    assert result.acknowledged >= 10 and result.requests >= result.acknowledged
    assert result.missing == result.reverted_stops == result.overlaps == 0
    assert result.retry_conflicts == 0 and result.server_errors == 0
