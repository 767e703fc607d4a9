"""Giving up matters and push items the firm will not fix (`mycase-sync ignore`), and taking it back.

Each change is made under the lock of the job that works on those rows, so a run never overwrites
it halfway; every id is checked before anything changes, so a typo changes nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from mycase_sync.errors import ConfigError
from mycase_sync.locks import job_lock
from mycase_sync.store import ItemState, MatterState

# What the state a row goes back to on --undo means for the next run
_MATTER_AFTER = {
    MatterState.FAILED: "the next import retries it",
    MatterState.PENDING: "the next import reads it and writes what differs",
    MatterState.SKIPPED: "skipped until it changes in MyCase",
    MatterState.SYNCED: "kept in step again when it changes in MyCase",
}
_ITEM_AFTER = {
    ItemState.FAILED: "parked as failed: `mycase-sync {job} --retry-failed` sends it",
    ItemState.WAITING: "sent once its case is imported",
}
_NOT_IGNORABLE = {ItemState.SENT: "it was sent already", ItemState.BEFORE_CUTOVER: "it is before the cut-over: never sent"}


@dataclass
class Target:
    """Rows of one table to change: matters (kind None, MyCase case ids) or push items of one kind."""

    job: str
    kind: str | None
    ids: list

    def name(self, row_id) -> str:
        return f"MyCase case {row_id}" if self.kind is None else f"Case Status {self.kind} {row_id}"

    def after(self, state: str) -> str:
        if self.kind is None:
            return _MATTER_AFTER.get(state, state)
        return _ITEM_AFTER.get(state, "sent by the next run").format(job=self.job)


def apply(app, targets: list[Target], reason: str | None, undo: bool) -> list[str]:
    """Ignore (or, with `undo`, stop ignoring) every target's rows; one line per row to show."""
    path = Path(app.settings.db_path)
    if not path.exists():
        raise ConfigError(f"no state store at {path}: nothing to ignore (give it the same --env-file as cron)")
    store = app.store
    lines: list[str] = []
    with contextlib.ExitStack() as locks:
        for job in sorted({target.job for target in targets}):
            locks.enter_context(job_lock(path, job))
        rows = {id(target): _rows(store, target) for target in targets}
        for target in targets:
            _check(target, rows[id(target)].states(target.ids), undo, path)
        for target in targets:
            table = rows[id(target)]
            if undo:
                fallback = MatterState.FAILED if target.kind is None else ItemState.FAILED
                restored = table.undo(target.ids, fallback)
                lines += [f"{target.name(i)}: no longer ignored ({restored[i]}: {target.after(restored[i])})"
                          if i in restored else f"{target.name(i)}: was not ignored" for i in target.ids]
            else:
                changed = set(table.ignore(target.ids, reason))
                lines += [f"{target.name(i)}: ignored" if i in changed else f"{target.name(i)}: already ignored"
                          for i in target.ids]
    return lines


def _rows(store, target: Target):
    return store.matters.ignoring if target.kind is None else store.ledger(target.kind).ignoring


def _check(target: Target, states: dict, undo: bool, path: Path) -> None:
    for row_id in target.ids:
        if row_id not in states:
            raise ConfigError(f"{target.name(row_id)} is not in state store {path}: nothing changed (`mycase-sync"
                              " status` lists the failed ones)")
        if not undo and target.kind is not None and states[row_id] in _NOT_IGNORABLE:
            raise ConfigError(f"{target.name(row_id)} cannot be ignored: {_NOT_IGNORABLE[states[row_id]]};"
                              " nothing changed")
