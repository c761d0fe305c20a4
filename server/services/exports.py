"""The export formats of report rows: CSV (RFC 4180) and XLSX.

Durations are derived from whole seconds: ``duration`` (``H:MM:SS``) is exact, so the
rows add up to the summary's ``total_s`` second for second; ``duration_h`` is the same
value in decimal hours (six decimals in CSV, a full-precision number in XLSX).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import xlsxwriter

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
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_FORMULA_STARTS = ("=", "+", "-", "@")
TAG_SEPARATOR = ", "


def hms(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def decimal_hours(seconds: int) -> str:
    return f"{seconds / 3600:.6f}"


def _local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def guard(text: str) -> str:
    """A spreadsheet must not run a cell as a formula (CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_cells(row: ReportRow) -> list[str]:
    return [
        row.date.isoformat(),
        _local(row.start),
        _local(row.end),
        decimal_hours(row.seconds),
        hms(row.seconds),
        guard(row.user),
        guard(row.email),
        guard(row.task),
        guard(row.service),
        guard(row.external_id),
        guard(row.note),
        guard(TAG_SEPARATOR.join(row.tags)),
    ]


def csv_chunk(rows: Iterable[ReportRow], *, header: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(COLUMNS)
    writer.writerows(_csv_cells(row) for row in rows)
    return buffer.getvalue().encode("utf-8")


_EXCEL_EPOCH = datetime(1899, 12, 30)
_DAY_S = 86_400.0


def _serial(moment: datetime) -> float:
    """Excel's day number of a local wall-clock time (what a spreadsheet shows)."""
    return (moment.replace(tzinfo=None) - _EXCEL_EPOCH).total_seconds() / _DAY_S


class XlsxSheet:
    """One worksheet written row by row in XlsxWriter's ``constant_memory`` mode: each
    row goes to a temporary file as soon as the next one starts, so memory does not
    grow with the number of rows. Blocking: call it from a worker thread."""

    _WIDTHS = (11, 20, 20, 11, 10, 20, 26, 48, 14, 16, 40, 20)

    def __init__(self, path: Path) -> None:
        self._book: Any = xlsxwriter.Workbook(
            str(path), {"constant_memory": True, "tmpdir": str(path.parent)}
        )
        self._sheet: Any = self._book.add_worksheet("Entries")
        bold = self._book.add_format({"bold": True})
        self._date = self._book.add_format({"num_format": "yyyy-mm-dd"})
        self._time = self._book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self._hours = self._book.add_format({"num_format": "0.00"})
        self._duration = self._book.add_format({"num_format": "[h]:mm:ss"})
        for col, width in enumerate(self._WIDTHS):
            self._sheet.set_column(col, col, width)
        self._sheet.freeze_panes(1, 0)
        for col, name in enumerate(COLUMNS):
            self._sheet.write_string(0, col, name, bold)
        self._row = 1

    def write(self, rows: Iterable[ReportRow]) -> None:
        sheet, r = self._sheet, self._row
        number, string = sheet.write_number, sheet.write_string
        for row in rows:
            number(r, 0, float(row.date.toordinal() - _EXCEL_EPOCH.toordinal()), self._date)
            number(r, 1, _serial(row.start), self._time)
            number(r, 2, _serial(row.end), self._time)
            number(r, 3, row.seconds / 3600, self._hours)
            number(r, 4, row.seconds / _DAY_S, self._duration)
            # Strings are written as strings (never as formulas); empty cells are skipped.
            for col, text in (
                (5, row.user),
                (6, row.email),
                (7, row.task),
                (8, row.service),
                (9, row.external_id),
                (10, row.note),
                (11, TAG_SEPARATOR.join(row.tags)),
            ):
                if text:
                    string(r, col, text)
            r += 1
        self._row = r

    def close(self) -> None:
        if self._row > 1:
            self._sheet.autofilter(0, 0, self._row - 1, len(COLUMNS) - 1)
        self._book.close()
