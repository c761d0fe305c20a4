"""A minimal streaming XLSX (SpreadsheetML) writer: one worksheet, numbers and inline
strings, a few number formats, a frozen header row and an autofilter.

Rows go straight into the deflated ``sheet1.xml`` member of the zip file as they come,
so memory does not grow with the number of rows. It exists because a general writer
costs tens of microseconds per row in Python (XlsxWriter's ``constant_memory`` mode
measured 3.7 s for the 1.2 million cells of a team's year, most of the 5 s budget); one
formatted string per row costs a few. Blocking: call it from a worker thread.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

# Cell styles (indexes into cellXfs below).
PLAIN, DATE, DATETIME, HOURS, DURATION, BOLD = range(6)
_STYLES = (
    _HEAD + f'<styleSheet xmlns="{_MAIN}">'
    '<numFmts count="3">'
    '<numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/>'
    '<numFmt numFmtId="166" formatCode="[h]:mm:ss"/>'
    "</numFmts>"
    '<fonts count="2">'
    '<font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    "</fonts>"
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="6">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="2" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_CONTENT_TYPES = (
    _HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels"'
    ' ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    _HEAD + f'<Relationships xmlns="{_PKG_REL}">'
    f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK_RELS = (
    _HEAD + f'<Relationships xmlns="{_PKG_REL}">'
    f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_REL}/styles" Target="styles.xml"/>'
    "</Relationships>"
)
# Characters XML 1.0 cannot carry at all.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NEEDS_WORK = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|^\\s|\\s$")
Cell = tuple[float | int | str, int]  # a value and its style; "" leaves the cell empty


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _text(value: str) -> str:
    if not _NEEDS_WORK.search(value):
        return f"<t>{value}</t>"
    return f'<t xml:space="preserve">{escape(_ILLEGAL.sub("", value))}</t>'


class XlsxWriter:
    """``write_row`` once per row (the first row may be the header), then ``close``."""

    def __init__(
        self, path: Path, *, sheet: str, widths: Sequence[float], freeze_header: bool = True
    ) -> None:
        self._sheet_name = sheet
        self._columns = [_column(i) for i in range(len(widths))]
        # Level 1: a year of entries compresses to a few MB either way, much faster.
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        for name, text in (
            ("[Content_Types].xml", _CONTENT_TYPES),
            ("_rels/.rels", _ROOT_RELS),
            ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
            ("xl/styles.xml", _STYLES),
        ):
            self._zip.writestr(name, text)
        self._out: IO[bytes] = self._zip.open("xl/worksheets/sheet1.xml", "w", force_zip64=True)
        pane = (
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
            if freeze_header
            else ""
        )
        cols = "".join(
            f'<col min="{i + 1}" max="{i + 1}" width="{w}" customWidth="1"/>'
            for i, w in enumerate(widths)
        )
        self._out.write(
            (
                _HEAD + f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
                f'<sheetViews><sheetView workbookViewId="0">{pane}</sheetView></sheetViews>'
                f'<sheetFormatPr defaultRowHeight="15"/><cols>{cols}</cols><sheetData>'
            ).encode()
        )
        self._rows = 0
        self._buffer: list[str] = []

    def write_row(self, cells: Iterable[Cell]) -> None:
        self._rows += 1
        n = self._rows
        parts = [f'<row r="{n}">']
        for column, (value, style) in zip(self._columns, cells, strict=False):
            if isinstance(value, str):
                if value:
                    parts.append(f'<c r="{column}{n}" s="{style}" t="inlineStr"><is>')
                    parts.append(_text(value))
                    parts.append("</is></c>")
            else:
                parts.append(f'<c r="{column}{n}" s="{style}"><v>{value!r}</v></c>')
        parts.append("</row>")
        self._buffer.append("".join(parts))
        if len(self._buffer) >= 500:
            self._flush()

    def _flush(self) -> None:
        self._out.write("".join(self._buffer).encode())
        self._buffer.clear()

    def close(self) -> None:
        self._flush()
        last = f"{self._columns[-1]}{max(self._rows, 1)}"
        self._out.write(
            (
                f'</sheetData><autoFilter ref="A1:{last}"/>'
                '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75"'
                ' header="0.3" footer="0.3"/></worksheet>'
            ).encode()
        )
        self._out.close()
        sheet = escape(self._sheet_name, {'"': "&quot;"})
        quoted = self._sheet_name.replace("'", "''")
        workbook = (
            _HEAD + f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
            f'<sheets><sheet name="{sheet}" sheetId="1" r:id="rId1"/></sheets>'
            '<definedNames><definedName name="_xlnm._FilterDatabase" localSheetId="0"'
            f' hidden="1">{escape(quoted)}!$A$1:${self._columns[-1]}${max(self._rows, 1)}'
            "</definedName></definedNames></workbook>"
        )
        self._zip.writestr("xl/workbook.xml", workbook)
        self._zip.close()
