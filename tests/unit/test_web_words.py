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
