"""One matter brought in step with Case Status: read what must be read, write only the difference.

`sync_matter` takes the mapped matter, what the store knows of it and (in a backfill) the case
read at the start of the run, and returns an Outcome; it never raises for one matter's trouble.
What a failure means for the next run is decided by one pure function, `judge_failure`:
- FAILED when we know what Case Status holds (a refusal changed nothing): retried by id;
- PENDING when we do not (a write without an answer, a gateway error on a write, a read that
  never happened): the next run reads the case before writing again;
- and whether Case Status is down altogether (the run then stops, exit 75, nothing charged).

The writes, in order: the lead attorney's Case Status user (with --create-staff, when missing),
the case itself when it does not exist (closed ones in the same request; a 409 adopts the
existing case), then reopen, PATCH (changed fields only; a stage only when it changed, since each
stage write sends the client a survey), close.

A create is never sent again before a lookup says the case does not exist: a 409 for a repeated
integration_id is not promised. After a create of unknown outcome (no answer) the case is looked up
once (by the integration_id filter, verified); when only a scan made earlier in the run could say,
the matter stays pending and the next run's lookup decides.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from mycase_sync.casestatus import client as cs
from mycase_sync.errors import OutcomeUnknown, ServiceError, TemporaryError
from mycase_sync.store import MatterState
from mycase_sync.store.matters import MatterRow
from mycase_sync.sync.mapping import MappedMatter, apply_step, held_from_case, plan_writes
from mycase_sync.values import positive_id

UNAVAILABLE = (429, 502, 503, 504)  # after the HTTP layer's retries: the service is down, not this record
ABSENT: dict = {}  # "read, and not there" (a distinct object: compared with `is`)
STALE = object()  # "only a list read earlier could say": no ground for sending a create again


@dataclass
class Lookup:
    """How a worker finds a matter's case: `find(mycase_id)` (the case, or None when absent) and
    `fresh(mycase_id)`, the same read made now, or STALE."""

    find: Callable[[str], dict | None]
    fresh: Callable[[str], Any]
READ_AGAIN = "(Case Status is read again before the next write)"


@dataclass
class Outcome:
    """What was done for one matter, for the store and the report."""

    matter: MappedMatter
    action: str  # created | updated | closed | reopened | unchanged | failed
    casestatus_id: int | None = None
    held: dict | None = None  # what Case Status holds now, as far as we know
    changed: list[str] = field(default_factory=list)
    state: str = MatterState.SYNCED
    error: str | None = None
    unavailable: str | None = None  # Case Status is down: the run stops with this (exit 75)
    service_fault: bool = False  # the service gave no usable answer (gateway error, none at all): not the matter's fault
    adopted: bool = False  # the case existed already (a crashed run, the hosted integration)
    notes: list[str] = field(default_factory=list)  # said in the report, beside the matter's own notes
    user_created: str | None = None  # the email of the Case Status user created for the lead


@dataclass
class Reached:
    """How far one matter's work got: what judge_failure needs to know."""

    known: bool = False  # we know what Case Status holds
    writing: bool = False  # the request that failed was a write
    casestatus_id: int | None = None


def judge_failure(exc: Exception, done: Reached) -> tuple[str, str, str | None]:
    """(state, error, unavailable) for a matter whose work raised `exc`: see the module docstring."""
    if isinstance(exc, OutcomeUnknown):
        return MatterState.PENDING, f"{exc} {READ_AGAIN}", None
    if isinstance(exc, ServiceError):
        # Down, not one passing failure, only when the HTTP layer's repeats got the same answer: a
        # write it does not repeat (a create answered 502) leaves the matter pending, the run goes on.
        unavailable = f"Case Status unavailable: {exc}" if exc.status in UNAVAILABLE and exc.repeated else None
        if exc.status == 404 and done.casestatus_id is not None:
            return MatterState.PENDING, f"case {done.casestatus_id} is no longer in Case Status: {exc}", unavailable
        if not done.known or (done.writing and (exc.status is None or exc.status >= 500)):
            # A gateway error on a write may hide a write that landed: read before writing again.
            return MatterState.PENDING, f"{exc} {READ_AGAIN}", unavailable
        return MatterState.FAILED, str(exc), unavailable
    if isinstance(exc, TemporaryError):
        return MatterState.PENDING, str(exc), str(exc)
    raise TypeError(f"not a failure of one matter: {exc!r}")


class StaffUsers:
    """The emails of Case Status users, shared by the workers; a missing lead is created once."""

    def __init__(self, emails: set[str]):
        self._emails = {e.strip().lower() for e in emails if e and e.strip()}
        self._lock = threading.Lock()

    def has(self, email: str | None) -> bool:
        return (email or "").lower() in self._emails

    def add(self, email: str) -> None:
        self._emails.add(email.lower())

    @property
    def emails(self) -> set[str]:
        return self._emails

    def ensure(self, email: str, create: Callable[[], Any]) -> bool:
        """Create the user unless it exists (or another worker just made it); True if created here."""
        with self._lock:
            if self.has(email):
                return False
            create()
            self.add(email)
            return True


def sync_matter(api, matter: MappedMatter, row: MatterRow | None, found: dict | None, *, dry_run: bool,
                users: StaffUsers | None = None, lookup: Lookup | None = None) -> Outcome:
    """Bring one matter in step (see the module docstring). `found`: the case read at the start of a
    backfill, ABSENT when there was none, None when nothing was read. `users`: given when the lead
    attorney's user must be created first. `lookup`: how to find a case (by default the client's
    verified find_case)."""
    lookup = lookup or Lookup(api.find_case, api.find_case)
    out = Outcome(matter, MatterState.FAILED)
    if users is not None:
        try:
            _ensure_lead_user(api, matter, users, out)
        except (ServiceError, TemporaryError) as exc:  # nothing was written to the case
            out.unavailable = judge_failure(exc, Reached(known=True))[2]
            out.state = MatterState.PENDING if row is not None and not row.trusted else MatterState.FAILED
            out.error = f"could not create Case Status user {matter.lead.email}: {exc}"
            return out
    done = Reached()
    try:
        if row is not None and row.trusted:
            done.known = True
            out.held, out.casestatus_id = row.fields, row.casestatus_id
        else:
            if found is None:  # no list read at the start of this run: look it up
                found = lookup.find(matter.mycase_id)
            done.known = True
            if found is not None and found is not ABSENT:
                out.held, out.casestatus_id = held_from_case(found), positive_id(found.get(cs.F_ID))
                out.adopted = row is None or row.casestatus_id is None
        done.casestatus_id = out.casestatus_id
        if out.held is None:
            if dry_run:
                out.action, out.changed, out.state = "created", _filled(matter.fields), MatterState.SYNCED
                return out
            done.writing = True
            try:
                cs_id, created = api.create_case(matter.fields)
            except OutcomeUnknown:
                again = lookup.fresh(matter.mycase_id)  # it may have landed: look before sending it again
                if again is STALE:
                    raise
                if again is not None:
                    done.writing = False
                    out.adopted = True
                    out.held, out.casestatus_id = held_from_case(again), positive_id(again.get(cs.F_ID))
                    done.casestatus_id = out.casestatus_id
                    _write_difference(api, out, done, dry_run)
                    out.state = MatterState.SYNCED
                    out.notes.append("the create's answer was lost; found in Case Status: adopted")
                    return out
                cs_id, created = api.create_case(matter.fields)  # looked up: not there; sent once more
            done.writing = False
            if created:
                out.action, out.casestatus_id = "created", cs_id
                out.held, out.changed = dict(matter.fields), _filled(matter.fields)
                out.state = MatterState.SYNCED
                return out
            done.known = False  # 409: it exists after all; adopt it and write the difference
            existing = lookup.find(matter.mycase_id)
            if existing is None:
                raise ServiceError(cs.SERVICE, "POST", cs.CASES, 409, "exists, but cannot be found by integration_id")
            done.known, out.adopted = True, True
            out.casestatus_id = done.casestatus_id = cs_id
            out.held = held_from_case(existing)
        _write_difference(api, out, done, dry_run)
        out.state = MatterState.SYNCED
        return out
    except (ServiceError, TemporaryError) as exc:
        out.state, out.error, out.unavailable = judge_failure(exc, done)
        out.service_fault = isinstance(exc, OutcomeUnknown) or (isinstance(exc, ServiceError) and exc.status in UNAVAILABLE)
        out.action = MatterState.FAILED
        return out


def _ensure_lead_user(api, matter: MappedMatter, users: StaffUsers, out: Outcome) -> None:
    lead = matter.lead
    email = lead.email or ""
    if users.ensure(email, lambda: api.create_user(email, lead.first_name or email.split("@")[0],
                                                   lead.last_name or "-", cs.ROLE_ATTORNEY)):
        out.user_created = email
        out.notes.append(f"created Case Status user {email} for lead attorney {lead.name}")


def _write_difference(api, out: Outcome, done: Reached, dry_run: bool) -> None:
    """Send the plan's writes in order, keeping `out.held` to what each one left in Case Status."""
    plan = plan_writes(out.matter.fields, out.held)
    if plan.empty:
        out.action = "unchanged"
        return
    out.changed = plan.changed_fields()
    action = "reopened" if plan.reopen else "closed" if plan.close else "updated"
    if dry_run:
        out.action = action
        return
    cs_id = out.casestatus_id
    for step, send in (("reopen", plan.reopen and (lambda: api.reopen_case(cs_id))),
                       ("patch", plan.patch and (lambda: api.update_case(cs_id, plan.patch))),
                       ("close", plan.close and (lambda: api.close_case(cs_id, plan.closed_date)))):
        if send:
            done.writing = True
            send()
            done.writing = False
            out.held = apply_step(out.held, step, plan)
    out.action = action


def _filled(fields: dict) -> list[str]:
    return sorted(k for k, v in fields.items() if v not in (None, [], ""))
