"""The streaming XLSX writer: what a spreadsheet reader sees (openpyxl, not read-only, so
styles, the frozen header and the filter are read back too)."""

from __future__ import annotations

import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import openpyxl

from server.services import xlsx


def test_values_formats_escaping_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    writer = xlsx.XlsxWriter(path, sheet="Entries", widths=[10.0] * 30)
    writer.write_row((f"h{i}", xlsx.BOLD) for i in range(30))
    writer.write_row(
        [
            (46_110, xlsx.DATE),
            (46_110.9375, xlsx.DATETIME),
            (1.5, xlsx.HOURS),
            (5400 / 86400, xlsx.DURATION),
            ('a < b & "c" > d', xlsx.PLAIN),
            ("=1+1", xlsx.PLAIN),
            ("  padded ", xlsx.PLAIN),
            ("bell\x07 and nul\x00 gone", xlsx.PLAIN),
            ("", xlsx.PLAIN),
            ("Zażółć \u203a ✓", xlsx.PLAIN),
            *[("x", xlsx.PLAIN)] * 20,
        ]
    )
    writer.close()
    book = openpyxl.load_workbook(path)
    sheet = book["Entries"]
    assert sheet["A1"].value == "h0" and sheet["A1"].font.b
    assert sheet["AD1"].value == "h29"  # columns past Z
    assert sheet["A2"].value == datetime(2026, 3, 29) and sheet["A2"].number_format == "yyyy-mm-dd"
    assert sheet["B2"].value == datetime(2026, 3, 29, 22, 30)
    assert sheet["C2"].value == 1.5 and sheet["C2"].number_format == "0.00"
    assert sheet["D2"].value in (timedelta(hours=1, minutes=30), datetime(1899, 12, 30, 1, 30))
    assert sheet["D2"].number_format == "[h]:mm:ss"
    assert sheet["E2"].value == 'a < b & "c" > d'
    assert sheet["F2"].value == "=1+1" and sheet["F2"].data_type == "s"  # text, not a formula
    assert sheet["G2"].value == "  padded "
    assert sheet["H2"].value == "bell and nul gone"
    assert sheet["I2"].value is None
    assert sheet["J2"].value == "Zażółć \u203a ✓"
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:AD2"
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert archive.namelist()[0] == "[Content_Types].xml"
        assert "<f>" not in archive.read("xl/worksheets/sheet1.xml").decode()


def test_an_empty_sheet_is_still_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "e.xlsx"
    xlsx.XlsxWriter(path, sheet="It's", widths=[5.0]).close()
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["It's"]
