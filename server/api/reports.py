"""Handlers for reports: the summary and the streamed CSV / XLSX exports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import ValidationError

from ..domain.errors import ValidationFailed
from ..services.exports import CSV_TYPE, XLSX_TYPE, XlsxSheet, csv_chunk
from ..services.reports import Export, ReportParams
from . import models as m
from .core import REQUEST_ID, Api, Ctx

log = logging.getLogger("server.api.reports")
api = Api()
F = TypeVar("F", bound=m.ReportFilter)
FILE_CHUNK = 256 * 1024
ROW_BATCH = 1000


def report_params(ctx: Ctx, model: type[F]) -> ReportParams:
    """The validated query; ``user_id`` may be repeated (the registry's own parsing keeps
    the first value of each name)."""
    raw: dict[str, Any] = dict(ctx.request.query)
    if "user_id" in raw:
        raw["user_id"] = ctx.request.query.getall("user_id")
    try:
        q = model.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "query", "message": e["msg"]}
            for e in exc.errors()
        ]
        raise ValidationFailed("invalid query parameters", errors) from None
    return ReportParams(
        first=q.from_,
        last=q.to,
        tz=q.tz,
        group_by=q.group_by if isinstance(q, m.ReportQuery) else ("task",),
        user_ids=tuple(q.user_id),
        task_id=q.task_id,
        tag=q.tag,
    )


@api.route(
    "GET",
    "/api/v1/reports/summary",
    summary="Totals over local dates, grouped by task, user, day or tag",
    tag="reports",
    query=m.ReportQuery,
    response=m.ReportOut,
    errors=(403, 404),
)
async def report_summary(ctx: Ctx) -> Any:
    return await ctx.services.reports.summary(ctx.user, report_params(ctx, m.ReportQuery))


def _download(ctx: Ctx, export: Export, content_type: str, suffix: str) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Disposition": f'attachment; filename="{export.file_stem}.{suffix}"',
            "Cache-Control": "no-store",
            "X-Request-Id": ctx.request[REQUEST_ID],
        }
    )
    response.content_type = content_type
    if content_type.startswith("text/"):
        response.charset = "utf-8"
    return response


async def _send(
    ctx: Ctx, response: web.StreamResponse, chunks: AsyncGenerator[bytes, None]
) -> web.StreamResponse:
    """Start the response and stream ``chunks``. A failure after the first byte cuts the
    connection so that the client sees a broken download, never a complete-looking
    truncated one."""
    await response.prepare(ctx.request)
    try:
        # aclosing: a source that holds a file is closed as soon as the download ends,
        # not whenever the collector gets to an abandoned generator.
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                await response.write(chunk)
    except ConnectionResetError:
        return response  # the client went away: nothing left to tell it
    except Exception:
        log.exception("export failed after it started (request %s)", ctx.request[REQUEST_ID])
        if ctx.request.transport is not None:
            ctx.request.transport.abort()
        return response
    await response.write_eof()
    return response


@api.route(
    "GET",
    "/api/v1/reports/entries.csv",
    summary="The entries behind a report as CSV (streamed)",
    tag="reports",
    query=m.ReportFilter,
    response=CSV_TYPE,
    errors=(403, 404),
)
async def report_csv(ctx: Ctx) -> Any:
    export = await ctx.services.reports.export(
        ctx.user, report_params(ctx, m.ReportFilter), ROW_BATCH
    )
    return await _send(ctx, _download(ctx, export, CSV_TYPE, "csv"), _csv_chunks(export))


async def _csv_chunks(export: Export) -> AsyncGenerator[bytes, None]:
    yield csv_chunk((), header=True)
    async for rows in export.batches:
        yield csv_chunk(rows)


async def _xlsx_file(export: Export, directory: str) -> Path:
    path = Path(directory) / "entries.xlsx"
    sheet = await asyncio.to_thread(XlsxSheet, path)
    try:
        async for rows in export.batches:
            await asyncio.to_thread(sheet.write, rows)
    finally:
        await asyncio.to_thread(sheet.close)
    return path


async def _file_chunks(path: Path) -> AsyncGenerator[bytes, None]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, FILE_CHUNK):
            yield chunk
    finally:
        handle.close()


@api.route(
    "GET",
    "/api/v1/reports/entries.xlsx",
    summary="The entries behind a report as an XLSX workbook (streamed)",
    tag="reports",
    query=m.ReportFilter,
    response=XLSX_TYPE,
    errors=(403, 404),
)
async def report_xlsx(ctx: Ctx) -> Any:
    export = await ctx.services.reports.export(
        ctx.user, report_params(ctx, m.ReportFilter), ROW_BATCH
    )
    # The workbook is written to a temporary directory row batch by row batch in a worker
    # thread (a zip's directory comes last), then sent in chunks; the directory goes away
    # either way.
    with tempfile.TemporaryDirectory(prefix="tt-xlsx-") as directory:
        path = await _xlsx_file(export, directory)
        response = _download(ctx, export, XLSX_TYPE, "xlsx")
        response.content_length = (await asyncio.to_thread(path.stat)).st_size
        return await _send(ctx, response, _file_chunks(path))
