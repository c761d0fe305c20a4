"""Collections, their filterable fields and their indexes: the schema both adapters build."""

from __future__ import annotations

from ..domain.emails import email_key
from .base import CollectionSpec, Index

T, B = "text", "bool"

ACCOUNTS = CollectionSpec("accounts", {"name": T})
USERS = CollectionSpec(
    "users",
    {"account_id": T, "email": T, "email_key": T, "active": B, "role": T},
    (
        # Login is by e-mail alone, so an e-mail address belongs to one user everywhere;
        # addresses are stored as given and compared by their case-insensitive key.
        Index(("email_key",), unique=True),
        Index(("account_id", "email")),
    ),
    derived={"email_key": lambda doc: email_key(doc["email"]) if doc.get("email") else None},
)
TOKENS = CollectionSpec(
    "tokens",
    {"account_id": T, "user_id": T, "expires_at": T},
    (Index(("account_id", "user_id")),),
)
INVITATIONS = CollectionSpec(
    "invitations",
    {"account_id": T, "user_id": T, "email": T, "used": B, "expires_at": T},
    (Index(("account_id", "email")),),
)
TASKS = CollectionSpec(
    "tasks",
    {
        "account_id": T,
        "parent_id": T,
        "imported": B,
        "source_service": T,
        "source_external_id": T,
        "removed": B,
        "archived": B,
        # Imported items: a short hash of the fields a sync sets, so a re-sync compares
        # one small value per item instead of whole documents.
        "sync_hash": T,
    },
    (
        Index(("account_id", "parent_id")),
        # One task per imported item, ever: re-enabling reuses it instead of duplicating.
        Index(
            ("account_id", "source_service", "source_external_id"),
            unique=True,
            partial={"imported": True},
        ),
    ),
)
MEMBERS = CollectionSpec(
    "members",
    {"account_id": T, "task_id": T, "user_id": T, "origin": T, "removed": B},
    (
        Index(("account_id", "task_id", "user_id"), unique=True),
        Index(("account_id", "user_id")),
    ),
)
ENTRIES = CollectionSpec(
    "entries",
    {
        "account_id": T,
        "user_id": T,
        "task_id": T,
        "start": T,
        "end": T,
        "running": B,
        "pending_service": T,
        "pending_external_id": T,
        # The digest of the Idempotency-Key of the start that created the entry, and of
        # the stop that ended it: a replayed start or stop finds its entry by these.
        "start_key": T,
        "keyed": B,
        "stop_key": T,
    },
    (
        # A user's entries in start order; it also covers what a report by user and day
        # reads (see sqlite_reports.BY_USER).
        Index(("account_id", "user_id", "start", "start_s", "end_s", "task_id")),
        # Reports: entries starting in a range, and entries ending after a range's start
        # (or running), each with every column a summary reads (the whole seconds too),
        # so that SQLite answers from the index alone.
        Index(("account_id", "start", "start_s", "end_s", "user_id", "task_id")),
        Index(("account_id", "end", "start", "start_s", "end_s", "user_id", "task_id")),
        Index(("account_id", "task_id")),
        Index(("account_id", "pending_service", "pending_external_id")),
        # The database itself holds "at most one running timer per user".
        Index(("account_id", "user_id"), unique=True, partial={"running": True}),
        # One entry per start Idempotency-Key, ever: the entry is its own idempotency
        # record, so no half-written record can outlive a crash and block the key.
        Index(("account_id", "start_key"), unique=True, partial={"keyed": True}),
        Index(("account_id", "stop_key")),
    ),
    seconds={"start_s": "start", "end_s": "end"},
)
INTEGRATIONS = CollectionSpec(
    "integrations",
    {"account_id": T, "service": T, "status": T, "next_sync_at": T, "next_poll_at": T},
    (Index(("account_id", "service"), unique=True), Index(("status", "next_sync_at"))),
)
SYNCS = CollectionSpec(
    "syncs",
    {
        "account_id": T,
        "service": T,
        "state": T,
        "started_at": T,
        "requested_at": T,
        "kind": T,
        "active": B,
        "waiting": B,
        "heartbeat_at": T,
    },
    (
        Index(("account_id", "service", "started_at")),
        Index(("account_id", "service", "requested_at")),
        # The sync lease: at most one running sync (or incremental check) per integration,
        # across every server process sharing the database. A live run renews
        # ``heartbeat_at``; a run whose heartbeat is stale may be taken over.
        Index(("account_id", "service"), unique=True, partial={"active": True}),
        # At most one queued follow-up per integration: every force sync requested while
        # one runs joins it, and it starts as soon as the running one ends. (Its own key
        # pattern: MongoDB refuses two indexes that differ only in the partial filter.)
        Index(("account_id", "service", "waiting"), unique=True, partial={"waiting": True}),
    ),
)
EVENTS = CollectionSpec(
    "events",
    {"account_id": T, "user_id": T, "created_at": T, "origin": T},
    (Index(("created_at",)), Index(("account_id", "user_id", "created_at"))),
)
# Short per-user leases that serialise timer switches across server processes.
TIMER_LOCKS = CollectionSpec("timer_locks", {"account_id": T, "holder": T, "expires_at": T})
# Failed sign-ins per e-mail address (keyed by a digest of its comparison key) in the
# current window: shared by every server process, so throttling holds across them.
LOGIN_THROTTLE = CollectionSpec("login_throttle", {"window_start": T}, (Index(("window_start",)),))
OAUTH_STATES = CollectionSpec(
    "oauth_states",
    {"account_id": T, "user_id": T, "expires_at": T, "used": B},
    (Index(("account_id", "user_id")),),
)

ALL = (
    ACCOUNTS,
    USERS,
    TOKENS,
    INVITATIONS,
    TASKS,
    MEMBERS,
    ENTRIES,
    INTEGRATIONS,
    SYNCS,
    EVENTS,
    TIMER_LOCKS,
    OAUTH_STATES,
    LOGIN_THROTTLE,
)
