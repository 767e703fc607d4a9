"""The three jobs cron runs: import-matters, push-documents, push-messages.

Options and their checks only; the work lives in mycase_sync.sync, and app.run_job / app.run_dry
give every job the same lock, run record and exit-code rule.
"""

from __future__ import annotations

import datetime as dt

import click

from mycase_sync.commands.config import CASESTATUS, MYCASE, REQUESTS, STATE, reads


def parse_date(value: str | None, option: str) -> dt.datetime | None:
    """A date or date-time given by hand; naive values are taken as UTC."""
    from mycase_sync.values import parse_timestamp, utcnow

    if value is None:
        return None
    moment = parse_timestamp(value)
    if moment is None:
        raise click.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD or an ISO 8601 date-time)", param_hint=option)
    if moment > utcnow():
        raise click.BadParameter(f"{value!r} is in the future (dates are UTC unless an offset is given)",
                                 param_hint=option)
    return moment


def parse_case_ids(values: tuple[str, ...], option: str) -> list[str]:
    """MyCase case ids given by hand, as the store keys them; one line naming the first bad one."""
    from mycase_sync.values import positive_id

    bad = [value for value in values if positive_id(value) is None]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} is not a MyCase case id (a number)", param_hint=option)
    return [str(positive_id(value)) for value in values]


def _job(ctx: click.Context, job: str, work, dry_run: bool = False, by_hand: bool = False) -> None:
    """Run a job under its lock; a dry run prints its plan and is not recorded as a run; a run `by_hand`
    (--case, --since) is recorded apart from the scheduled ones."""
    from mycase_sync.app import run_dry, run_job

    if not dry_run:
        ctx.exit(run_job(ctx.obj.app, job, work, by_hand=by_hand))
    code, counts = run_dry(ctx.obj.app, job, work)
    for line in counts.get("plan", []):
        click.echo(line)
    ctx.exit(code)


@click.command("import-matters", epilog=reads(*MYCASE, *CASESTATUS, *REQUESTS, "MYCASE_SYNC_WORKERS", "MYCASE_SYNC_PHONE_REGION",
                                                  "MYCASE_SYNC_CREATE_STAFF", *STATE))
@click.option("--full", is_flag=True, help="Take every matter updated in the last 10 years, as the first run does.")
@click.option("--since", metavar="DATE", help="Take matters updated since DATE (YYYY-MM-DD or ISO 8601).")
@click.option("--case", "case_ids", multiple=True, metavar="ID", help="Import just this MyCase case id (repeatable).")
@click.option("--dry-run", is_flag=True, help="Read everything, report what would be written, write nothing.")
@click.option("--report", type=click.Path(dir_okay=False), metavar="FILE", help="Write one row per matter to FILE (.csv or .json).")
@click.option("--create-staff", is_flag=True, help="Create a Case Status user for a lead attorney who has none (or set MYCASE_SYNC_CREATE_STAFF=1).")
@click.pass_context
def import_matters(ctx: click.Context, full, since, case_ids, dry_run, report, create_staff):
    """Import all open and closed MyCase matters into Case Status (nightly).

    The first run backfills 10 years; later runs take matters updated in the last 30
    days, and never less than what changed since the last successful import. Matters
    that failed are retried by id. Only what changed is written (a stage only when it
    changed: each stage change sends the client a survey). Exit 1 when some matters
    failed (listed on stderr and in --report); skipped ones (no attorney, lead attorney
    not a Case Status user) are reported but do not change the exit code.
    """
    import os

    since_dt = parse_date(since, "--since")
    if full and (since_dt or case_ids):
        raise click.UsageError("--full cannot be combined with --since or --case")
    if since_dt and case_ids:
        raise click.UsageError("--since cannot be combined with --case")
    parse_case_ids(case_ids, "--case")
    if report and not report.lower().endswith((".csv", ".json")):
        raise click.BadParameter("the report file must end in .csv or .json", param_hint="--report")
    if report and not os.path.isdir(os.path.dirname(os.path.abspath(report))):
        raise click.BadParameter(f"no such directory for {report!r}", param_hint="--report")
    from mycase_sync.sync.matters import import_matters as work

    app = ctx.obj.app
    app.settings.check_phone_region()
    app.check_ready()

    def job(run_id: str) -> dict:
        return work(app, run_id, full=full, since=since_dt, case_ids=list(case_ids), dry_run=dry_run,
                    report=report, create_staff=create_staff or app.settings.create_staff)

    _job(ctx, "import-matters", job, dry_run, by_hand=bool(since_dt or case_ids))


def _push_options(func):
    func = click.option("--retry-failed", is_flag=True, help="Put items parked as failed (after 10 failed runs) back in the queue.")(func)
    func = click.option("--all", "all_items", is_flag=True, help="Read the whole Case Status history again (the first run always does); nothing already pushed is sent again.")(func)
    func = click.option("--since", metavar="DATE", help="Cut-over (moving from the hosted integration): never send items created before DATE (YYYY-MM-DD or ISO 8601, UTC unless an offset is given); recorded once, a later run may repeat the same DATE only.")(func)
    func = click.option("--dry-run", is_flag=True, help="List what would be pushed (and what waits for its case); change nothing.")(func)
    return func


def _push(ctx: click.Context, job: str, work, dry_run, since, all_items, retry_failed) -> None:
    since_dt = parse_date(since, "--since")
    if all_items and since_dt:
        raise click.UsageError("--all cannot be combined with --since")
    app = ctx.obj.app
    app.check_ready()
    if since_dt is not None:
        from mycase_sync.sync.push import check_cutover

        check_cutover(app.store, job, since_dt)  # before a run is recorded: a refusal is a usage error

    def run(run_id: str) -> dict:
        return work(app, run_id, dry_run=dry_run, since=since_dt, all_items=all_items, retry_failed=retry_failed)

    _job(ctx, job, run, dry_run, by_hand=since_dt is not None)


@click.command("push-documents", epilog=reads(*MYCASE, *CASESTATUS, *REQUESTS, "MYCASE_SYNC_WORKERS", "MYCASE_DOCUMENTS_FOLDER", *STATE))
@_push_options
@click.pass_context
def push_documents(ctx: click.Context, dry_run, since, all_items, retry_failed):
    """Copy every document shared in Case Status into its MyCase matter, exactly once (every 20 min).

    Files go to the matter's root folder ("Case Documents", or MYCASE_DOCUMENTS_FOLDER) under a
    safe name; a file on a case not imported yet waits and goes once its case is imported. A file
    already in MyCase (found by its marker, with the same bytes) is adopted, not filed again. Exit 1
    when some files failed (one line each on stderr; retried next run, parked after 10 runs).
    """
    from mycase_sync.sync.documents import push_documents as work

    _push(ctx, "push-documents", work, dry_run, since, all_items, retry_failed)


@click.command("push-messages", epilog=reads(*MYCASE, *CASESTATUS, *REQUESTS, "MYCASE_SYNC_WORKERS", *STATE))
@_push_options
@click.pass_context
def push_messages(ctx: click.Context, dry_run, since, all_items, retry_failed):
    """Post every Case Status client message to its MyCase matter as a note, exactly once (every 5 min).

    Each note says who wrote to whom, carries the text and the time it was sent; notes of one
    matter are posted in the order the messages were sent. A message on a case not imported yet
    waits and goes once its case is imported; one already in MyCase (found by its marker) is
    adopted, not posted again. Exit 1 when some messages failed (one line each on stderr; retried
    next run, parked after 10 runs).
    """
    from mycase_sync.sync.messages import push_messages as work

    _push(ctx, "push-messages", work, dry_run, since, all_items, retry_failed)
