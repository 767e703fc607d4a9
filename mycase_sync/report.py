"""`--report FILE`: one row per matter (CSV or JSON, by the file's extension), written as the run goes.

Rows are streamed to the file, never collected: a 10-year backfill of 100,000 matters keeps
memory flat, and an interrupted run still leaves a valid file with the rows it got to. The
file is created 0600: it names clients and attorneys.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from typing import IO

from mycase_sync.errors import ConfigError

COLUMNS = ("mycase_id", "case_id", "action", "changed_fields", "reason")


@dataclass
class ReportRow:
    mycase_id: str
    case_id: str | None  # the Case ID clients see (readable_id)
    action: str  # created | updated | closed | reopened | unchanged | skipped | failed | ignored (dry run: "would ...")
    changed_fields: list[str] = field(default_factory=list)
    reason: str = ""


class Report:
    """A writer for one report file; `write(row)` as each matter is done, `close()` at the end."""

    def __init__(self, path: str):
        self.path = path
        self.kind = "json" if path.lower().endswith(".json") else "csv"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise ConfigError(f"--report {path}: cannot write the file: {exc.strerror}") from None
        self._file: IO[str] = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self.rows = 0
        if self.kind == "csv":
            self._csv = csv.writer(self._file)
            self._csv.writerow(COLUMNS)
        else:
            self._file.write("[")

    def write(self, row: ReportRow) -> None:
        if self.kind == "csv":
            self._csv.writerow([row.mycase_id, row.case_id or "", row.action, ";".join(row.changed_fields), row.reason])
        else:
            record = {"mycase_id": row.mycase_id, "case_id": row.case_id, "action": row.action,
                      "changed_fields": list(row.changed_fields), "reason": row.reason}
            self._file.write(("\n" if not self.rows else ",\n") + json.dumps(record, ensure_ascii=False))
        self.rows += 1

    def close(self) -> None:
        if self._file.closed:
            return
        if self.kind == "json":
            self._file.write("\n]\n" if self.rows else "]\n")
        self._file.close()


class NoReport:
    """Stands in when no --report was asked for."""

    rows = 0

    def write(self, row: ReportRow) -> None:
        pass

    def close(self) -> None:
        pass


def open_report(path: str | None) -> Report | NoReport:
    return Report(path) if path else NoReport()
