"""The export formats of report rows: CSV (RFC 4180) and XLSX.

Durations are derived from whole seconds: ``duration`` (``H:MM:SS``) is exact, so the
rows add up to the summary's ``total_s`` second for second; ``duration_h`` is the same
value in decimal hours (six decimals in CSV, a full-precision number in XLSX, where
``date``, ``start`` and ``end`` are date-time cells and ``duration`` a ``[h]:mm:ss`` one).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from ..domain.localdays import DAY_S, day_text, wall_text
from . import xlsx
from .reports import ReportRow

COLUMNS = (
    "date",
    "start",
    "end",
    "duration_h",
    "duration",
    "user",
    "email",
    "task",
    "service",
    "external_id",
    "note",
    "tags",
)
CSV_TYPE = "text/csv"
XLSX_TYPE = xlsx.MEDIA_TYPE
_FORMULA_STARTS = ("=", "+", "-", "@")


def hms(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def decimal_hours(seconds: int) -> str:
    return f"{seconds / 3600:.6f}"


def guard(text: str) -> str:
    """A spreadsheet must not run a cell as a formula (CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_cells(row: ReportRow) -> list[str]:
    return [
        day_text(row.start_local // DAY_S),
        wall_text(row.start_local),
        wall_text(row.end_local),
        decimal_hours(row.seconds),
        hms(row.seconds),
        guard(row.user),
        guard(row.email),
        guard(row.task),
        guard(row.service),
        guard(row.external_id),
        guard(row.note),
        guard(row.tags),
    ]


def csv_chunk(rows: Iterable[ReportRow], *, header: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(COLUMNS)
    writer.writerows(_csv_cells(row) for row in rows)
    return buffer.getvalue().encode("utf-8")


# Excel counts days from 1899-12-30; local epoch seconds -> its day number.
_EXCEL_DAY0 = 25_569
_DAY_F = float(DAY_S)
_WIDTHS = (11, 20, 20, 11, 10, 20, 26, 48, 14, 16, 40, 20)


class XlsxSheet:
    """The rows as one worksheet, written row by row to a file (memory does not grow with
    the number of rows). Blocking: call it from a worker thread."""

    def __init__(self, path: Path) -> None:
        self._writer = xlsx.XlsxWriter(path, sheet="Entries", widths=_WIDTHS)
        self._writer.write_row((name, xlsx.BOLD) for name in COLUMNS)

    def write(self, rows: Iterable[ReportRow]) -> None:
        write = self._writer.write_row
        for row in rows:
            # Strings stay strings (inline strings, never formulas); empty ones are left out.
            write(
                (
                    (row.start_local // DAY_S + _EXCEL_DAY0, xlsx.DATE),
                    (row.start_local / _DAY_F + _EXCEL_DAY0, xlsx.DATETIME),
                    (row.end_local / _DAY_F + _EXCEL_DAY0, xlsx.DATETIME),
                    (row.seconds / 3600, xlsx.HOURS),
                    (row.seconds / _DAY_F, xlsx.DURATION),
                    (row.user, xlsx.PLAIN),
                    (row.email, xlsx.PLAIN),
                    (row.task, xlsx.PLAIN),
                    (row.service, xlsx.PLAIN),
                    (row.external_id, xlsx.PLAIN),
                    (row.note, xlsx.PLAIN),
                    (row.tags, xlsx.PLAIN),
                )
            )

    def close(self) -> None:
        self._writer.close()
