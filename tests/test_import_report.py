"""--report files: one row per matter, CSV or JSON by extension, streamed, valid even when cut short."""

from __future__ import annotations

import csv
import json
import os
import stat

import pytest

from mycase_sync.errors import ConfigError
from mycase_sync.report import ReportRow, open_report

ROWS = [
    ReportRow("20400123", "2024-00012", "updated", ["description", "stage"], ""),
    ReportRow("20400124", None, "failed", [], 'opened_date "2019-13-45" is not a date, see, commas'),
    ReportRow("20400125", "Müller v. Ørsted", "skipped", [], "no attorney on the case in MyCase"),
]


def write_all(path) -> None:
    report = open_report(str(path))
    for row in ROWS:
        report.write(row)
    report.close()


def test_csv_has_one_row_per_matter_with_the_five_columns(tmp_path):
    path = tmp_path / "r.csv"
    write_all(path)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["mycase_id", "case_id", "action", "changed_fields", "reason"]
    assert rows[0] == {"mycase_id": "20400123", "case_id": "2024-00012", "action": "updated",
                       "changed_fields": "description;stage", "reason": ""}
    assert rows[1]["reason"] == 'opened_date "2019-13-45" is not a date, see, commas' and rows[1]["case_id"] == ""
    assert rows[2]["case_id"] == "Müller v. Ørsted"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # it names clients and attorneys


def test_json_is_a_list_of_objects(tmp_path):
    path = tmp_path / "r.JSON"
    write_all(path)
    rows = json.loads(path.read_text(encoding="utf-8"))
    assert rows[0] == {"mycase_id": "20400123", "case_id": "2024-00012", "action": "updated",
                       "changed_fields": ["description", "stage"], "reason": ""}
    assert rows[1]["case_id"] is None and len(rows) == 3


@pytest.mark.parametrize("name", ["empty.json", "empty.csv"])
def test_an_empty_or_interrupted_report_is_still_valid(tmp_path, name):
    report = open_report(str(tmp_path / name))
    report.close()
    report.close()
    text = (tmp_path / name).read_text()
    assert (json.loads(text) == []) if name.endswith(".json") else text.strip() == "mycase_id,case_id,action,changed_fields,reason"


def test_an_unwritable_report_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--report"):
        open_report(str(tmp_path / "no" / "such" / "dir.csv"))


def test_no_report_writes_nothing(tmp_path):
    report = open_report(None)
    report.write(ROWS[0])
    report.close()
    assert list(tmp_path.iterdir()) == []
