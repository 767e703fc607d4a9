"""The words the state store uses for where each thing stands; every module reads them from here."""


class MatterState:
    """A row of `matters`: one MyCase case and what Case Status is known to hold for it."""

    SYNCED = "synced"  # Case Status holds the stored fields
    PENDING = "pending"  # a write's outcome is unknown: read Case Status before writing again
    FAILED = "failed"  # the record's fault or a refusal: retried by id every run
    SKIPPED = "skipped"  # the firm's to fix (no attorney, lead not a user): retried when it changes
    IGNORED = "ignored"  # the firm will not fix it (`mycase-sync ignore`): left alone until --undo


class ItemState:
    """A row of `ledger`: one Case Status message or file on its way to MyCase."""

    WAITING = "waiting"  # its case is not imported yet
    PENDING = "pending"  # to send; nothing of ours landed
    CLAIMED = "claimed"  # a send began and its outcome is not confirmed: in doubt, look for its marker first
    SENT = "sent"
    FAILED = "failed"  # parked after too many failed runs; --retry-failed puts it back
    BEFORE_CUTOVER = "before_cutover"  # older than the job's --since cut-over: never sent
    IGNORED = "ignored"  # given up (`mycase-sync ignore --item`): never sent, until --undo


class RunOutcome:
    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"  # went through its work; some records failed
    FAILED = "failed"
    TEMPORARY = "temporary"
    AUTH = "auth"
    CONFIG = "config"  # a setting refused (a wrong key or URL): every run fails alike until it is fixed
    INTERRUPTED = "interrupted"
    COMPLETED = (SUCCESS, PARTIAL)


class RunKind:
    """How a run was started: only scheduled-style runs say whether cron's runs work."""

    SCHEDULED = "scheduled"  # no --case, no --since (what cron runs; also the first backfill by hand)
    BY_HAND = "by_hand"  # --case or --since: a part of the work, asked for by a person
