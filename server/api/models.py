"""Request and response models: they validate input and document the API."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from ..domain import emails
from ..domain.clock import MAX_YEAR, MIN_YEAR, iso

ServiceName = Literal["heyspace", "asana", "pivotaltracker"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Note = Annotated[str, StringConstraints(max_length=2000)]


def _utc(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError("expected an ISO 8601 timestamp") from None
    if isinstance(value, datetime):
        # The year as written is checked (what the schema's pattern can say); the UTC
        # instant then lies within 1969-9999 and keeps its fixed width.
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValueError(f"timestamp must lie between the years {MIN_YEAR} and {MAX_YEAR}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return iso(value.astimezone(UTC))
    return value


# The year range of _utc (1970-9998) as a pattern, for the schema.
_YEAR = r"(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"


# The one address rule (server/domain/emails.py), with its exact pattern in the schema.
Email = Annotated[
    str,
    AfterValidator(emails.check_email),
    WithJsonSchema({"type": "string", "pattern": emails.PATTERN, "maxLength": emails.MAX_LENGTH}),
]

# Accepted as any ISO 8601 form, stored and answered as fixed-width UTC with "Z".
Timestamp = Annotated[
    str,
    BeforeValidator(_utc),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": f"^{_YEAR}-"}),
]


def _not_null(schema: dict[str, Any]) -> None:
    """A property schema without its ``null`` alternative and ``null`` default."""
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        rest = [s for s in any_of if s.get("type") != "null"]
        if len(rest) == 1:
            del schema["anyOf"]
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest
    if "default" in schema and schema["default"] is None:
        del schema["default"]


def _body_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    for name in getattr(model, "NOT_NULL", ()):
        prop = schema.get("properties", {}).get(name)
        if prop is not None:
            _not_null(prop)
    extra = getattr(model, "SCHEMA_EXTRA", None)
    if extra:
        schema.update(extra)


class Body(BaseModel):
    """A request body (strict: JSON types are not coerced, ``0`` is no ``false``).

    ``NOT_NULL`` names optional fields that may be left out but not sent as ``null``:
    the schema says so and the request parser refuses it (one place, core._wrap)"""

    model_config = ConfigDict(
        extra="forbid", strict=True, str_max_length=10_000, json_schema_extra=_body_schema
    )
    NOT_NULL: ClassVar[tuple[str, ...]] = ()
    SCHEMA_EXTRA: ClassVar[dict[str, Any] | None] = None


def _query_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    # A query string has no null: an optional parameter is one that may be left out.
    for prop in schema.get("properties", {}).values():
        _not_null(prop)


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_query_schema)


# An offset into the list, as decimal digits (core.decode_cursor reads it).
Cursor = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,8}$")]


class ListQuery(Query):
    limit: int = Field(default=100, ge=1, le=500)
    cursor: Cursor | None = None


# -- auth and users -----------------------------------------------------------------


class LoginBody(Body):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


MailOutcome = Literal["sent", "failed", "not_configured"]
MAIL_DESCRIPTION = (
    "What became of the invitation mail: `sent` (the mail server accepted it), `failed` "
    "(it refused it or could not be reached: pass `invite_url` on yourself; the invitation "
    "stays valid) or `not_configured` (no TT_SMTP_URL: no mail was sent)."
)


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: Literal["admin", "user"]
    active: bool
    account_id: str
    time_zone: str = Field(
        default="UTC", description="IANA time zone name; the pages show local days in it"
    )
    invite_url: str | None = Field(
        default=None, description="One-time link of a new invitation (only when just invited)"
    )
    mail: MailOutcome | None = Field(
        default=None, description=MAIL_DESCRIPTION + " Only on a new invitation."
    )


class LoginOut(BaseModel):
    token: str
    user: UserOut


class UserCreate(Body):
    email: Email
    name: Name
    password: Annotated[str, StringConstraints(min_length=8, max_length=1000)] | None = None
    role: Literal["admin", "user"] = "user"


class MePatch(Body):
    NOT_NULL = ("name", "time_zone")
    name: Name | None = None
    time_zone: (
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=64),
            WithJsonSchema(
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "description": "IANA time zone name, e.g. Europe/Warsaw",
                }
            ),
        ]
        | None
    ) = None


class UserPatch(Body):
    NOT_NULL = ("name", "role", "active")
    name: Name | None = None
    role: Literal["admin", "user"] | None = None
    active: bool | None = None


class AcceptInvitation(Body):
    password: Annotated[str, StringConstraints(min_length=8, max_length=1000)]
    name: Name | None = None


# -- tasks --------------------------------------------------------------------------

Role = Literal["manager", "regular", "guest"]


class SourceOut(BaseModel):
    service: ServiceName
    external_id: str
    kind: str


class TaskOut(BaseModel):
    id: str
    parent_id: str | None
    name: str
    path: list[str]
    archived: bool
    keywords: list[str]
    source: SourceOut | None
    my_role: Role | None
    trackable: bool
    has_children: bool = Field(
        default=False, description="Whether the caller sees any subtask (archived ones included)"
    )


class TaskQuery(ListQuery):
    q: Annotated[str, StringConstraints(max_length=300)] | None = None
    parent_id: Id | None = None
    include_archived: bool = False
    trackable: bool | None = None


class TaskCreate(Body):
    name: Name
    parent_id: Id | None = None


class TaskPatch(Body):
    NOT_NULL = ("name", "archived", "keywords")
    name: Name | None = None
    parent_id: Id | None = None
    archived: bool | None = None
    keywords: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        default=None, max_length=100
    )


class MemberOut(BaseModel):
    user_id: str
    role: Role
    inherited_from: str | None


class MemberPut(Body):
    role: Role


class ResolveBody(Body):
    service: ServiceName
    external_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        max_length=500
    )


class Resolution(BaseModel):
    task_id: str
    name: str
    path: list[str]
    trackable: bool
    archived: bool
    my_total_s: int = Field(
        ge=0,
        description="The caller's tracked seconds on this task, all time; "
        "a running entry counts up to now.",
    )


class ResolveOut(BaseModel):
    results: dict[str, Resolution | None]


class MatchQuery(Query):
    # A page's address as browsers give it (ASCII, percent-encoded), and short enough that
    # the request line stays within the HTTP parser's limit (8190 bytes) once encoded.
    url: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^[\x21-\x7e]+$")]


class MatchOut(BaseModel):
    task: TaskOut | None


# -- timer and entries --------------------------------------------------------------


class PendingRef(BaseModel):
    service: ServiceName
    external_id: str


class EntryOut(BaseModel):
    id: str
    user_id: str
    task_id: str | None
    pending_ref: PendingRef | None
    start: str
    end: str | None
    duration_s: int
    note: str
    tags: list[str]
    created_with: str
    task_name: str | None = None
    task_path: list[str] | None = None


class TimerOut(BaseModel):
    running: EntryOut | None


class StartBody(Body):
    """Either ``task_id`` or ``service`` and ``external_id``."""

    NOT_NULL = ("task_id", "service", "external_id")
    SCHEMA_EXTRA = {
        "oneOf": [
            {
                "required": ["task_id"],
                "not": {"anyOf": [{"required": ["service"]}, {"required": ["external_id"]}]},
            },
            {"required": ["service", "external_id"], "not": {"required": ["task_id"]}},
        ]
    }
    task_id: Id | None = None
    service: ServiceName | None = None
    external_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    note: Note = ""
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    created_with: Annotated[str, StringConstraints(min_length=1, max_length=40)] = "api"
    # A replayed click: the entry starts here instead of at the server's clock.
    at: Timestamp | None = None


# 1-200 printable ASCII characters; no space at either end (HTTP drops it).
IDEMPOTENCY_KEY: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[\x21-\x7e]([\x20-\x7e]{0,198}[\x21-\x7e])?$",
}


def is_idempotency_key(key: str) -> bool:
    return (
        1 <= len(key) <= 200
        and key.isascii()
        and key.isprintable()
        and not key.startswith(" ")
        and not key.endswith(" ")
    )


class StartOut(BaseModel):
    running: EntryOut
    stopped: EntryOut | None


class StopBody(Body):
    entry_id: Id | None = None
    at: Timestamp | None = None


class StopOut(BaseModel):
    stopped: EntryOut | None


class EntryQuery(ListQuery):
    from_: Timestamp | None = Field(default=None, alias="from")
    to: Timestamp | None = None
    user_id: Id | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EntryCreate(Body):
    task_id: Id | None = None
    start: Timestamp
    end: Timestamp
    note: Note = ""
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    created_with: Annotated[str, StringConstraints(min_length=1, max_length=40)] = "api"


class EntryPatch(Body):
    NOT_NULL = ("start", "end", "note", "tags")
    task_id: Id | None = None
    start: Timestamp | None = None
    end: Timestamp | None = None
    note: Note | None = None
    tags: list[Tag] | None = Field(default=None, max_length=20)


def list_of(item: type[BaseModel]) -> dict[str, Any]:
    """Marks a route's response as the list envelope of ``item``."""
    return {"list_of": item}


# -- reports ------------------------------------------------------------------------

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
REPORT_MIN_YEAR = MIN_YEAR + 1  # local days of 1970 may begin before the epoch


def _report_date(value: Any) -> Any:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("expected a date YYYY-MM-DD")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError("not a calendar date") from None
    if not REPORT_MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValueError(f"the year must lie between {REPORT_MIN_YEAR} and {MAX_YEAR}")
    return day


def _zone(value: Any) -> Any:
    from ..domain.localdays import zone_or_none

    if isinstance(value, str) and zone_or_none(value) is None:
        raise ValueError("not an IANA time zone")
    return value


def _group_by(value: Any) -> Any:
    from ..services.reports import parse_group_by

    if isinstance(value, str):
        return parse_group_by(value)
    return value


def _many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


ReportDate = Annotated[
    date,
    BeforeValidator(_report_date),
    WithJsonSchema({"type": "string", "format": "date"}),
]
ZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_zone)]
GroupKey = Literal["task", "user", "day", "tag"]
GroupBy = Annotated[
    tuple[GroupKey, ...],
    BeforeValidator(_group_by),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^(task|user|day|tag)(,(task|user|day|tag))?$",
            "default": "task",
            "description": "one or two distinct levels, e.g. user,task",
        }
    ),
]


class ReportFilter(Query):
    from_: ReportDate = Field(alias="from")
    to: ReportDate
    tz: ZoneName | None = None
    user_id: Annotated[list[Id], BeforeValidator(_many)] = Field(default_factory=list)
    task_id: Id | None = None
    tag: Tag | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ReportQuery(ReportFilter):
    group_by: GroupBy = ("task",)


class ReportGroup(BaseModel):
    key: str | None
    label: str
    total_s: int
    groups: list[ReportGroup] | None = None


class ReportOut(BaseModel):
    from_: str = Field(alias="from")
    to: str
    tz: str
    total_s: int
    groups: list[ReportGroup]
