"""The integrations page's words for statuses, sync errors and Asana's refusals."""

from __future__ import annotations

from server.web.integrations import BY_SERVICE, asana_refusal, error_in_words, status_text

ASANA = BY_SERVICE["asana"]


def test_status_words() -> None:
    assert status_text(ASANA, "needs_reauth", None) == "Asana refused the saved login — re-enable."
    assert "re-enable it with your own login" in status_text(ASANA, "owner_missing", None)
    assert "next at 10:00" in status_text(ASANA, "ok", None, "10:00")
    failed = status_text(ASANA, "error", "GET https://x/api: HTTP 503 after 5 attempt(s)")
    assert failed.startswith("The last synchronization failed: Asana had a server error (HTTP 503)")


def test_sync_errors_in_words() -> None:
    assert "limited how many requests" in error_in_words(
        "Asana", "GET https://x: still rate limited (429) after 5 attempt(s)"
    )
    assert "refused access to some of the data (HTTP 403)" in error_in_words(
        "Asana", "GET https://x/projects/1/tasks: access forbidden (403): Forbidden"
    )
    assert error_in_words("HeySpace", "GET https://x: TimeoutError after 5 attempt(s)") == (
        "HeySpace did not answer in time"
    )
    assert error_in_words("HeySpace", "GET https://x: ClientConnectorError after 1 attempt(s)") == (
        "HeySpace could not be reached"
    )
    assert error_in_words("HeySpace", "something else") == "something else"


def test_asana_refusals_in_words() -> None:
    full = asana_refusal("forbidden_scopes", "not allowed", "")
    assert full.startswith("Asana refused the requested permissions (forbidden_scopes)")
    assert "TT_ASANA_SCOPES" in full and "“not allowed”" in full
    granular = asana_refusal("forbidden_scopes", "", "tasks:read projects:read")
    assert "leave TT_ASANA_SCOPES empty" in granular and "tasks:read projects:read" in granular
    assert "access_denied" in asana_refusal("access_denied", "", "")
    assert "start again" in asana_refusal("oauth_state_invalid", "", "")
    assert asana_refusal("weird", "", "") == "Asana did not connect (weird)."


def test_sync_records_with_unreadable_items_and_polls() -> None:
    from zoneinfo import ZoneInfo

    from server.web.integrations import _poll_view, _sync_view

    utc = ZoneInfo("UTC")
    view = _sync_view(
        {
            "id": "s1",
            "state": "succeeded",
            "started_at": "2026-12-01T10:00:00.000000Z",
            "finished_at": "2026-12-01T10:01:30.000000Z",
            "counts": {"created": 2, "requests": 40},
            "error": None,
            "unreadable": [{"external_id": "9", "name": "Secret project", "kind": "project"}],
        },
        utc,
        "Asana",
    )
    assert view["duration"] == "1 min 30 s" and view["unreadable"] == ["Secret project"]
    assert dict(view["counts"])["created"] == 2 and view["requests"] == 40
    assert _poll_view(None, utc) is None
    poll = _poll_view({"at": "2026-12-01T10:02:00Z", "created": 1, "requests": 1}, utc)
    assert poll is not None and poll["created"] == 1 and poll["updated"] == 0
