"""The command line: options, output and exit codes only. The work lives in the modules it calls.

Imports of the heavy parts happen inside each command, so `--help` and idle cron runs
start fast.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys

import click

from mycase_sync.errors import EXIT_CONFIG, EXIT_TEMPORARY, LockHeld, SyncError

EXIT_CODES_HELP = """\b
Exit codes:
  0   success
  1   the run finished but some records failed (recorded, retried next run)
  2   usage or configuration error
  3   MyCase authorization missing, expired or revoked: run `mycase-sync auth`
  75  temporary: another run of the same job holds its lock (silent off a
      terminal), or a service is still unreachable after the retries;
      nothing lost, the next run continues
  130 interrupted by Ctrl-C (SIGINT); 143 stopped by SIGTERM or SIGHUP: the
      run is recorded as interrupted; nothing lost, run it again to continue
"""


class Context:
    """What the group's options leave for the commands: built lazily, closed at exit."""

    def __init__(self, env_file: str | None, verbose: int, quiet: bool, log_file: str | None):
        self.env_file = env_file
        self.verbose = verbose
        self.quiet = quiet
        self.log_file = log_file
        self._app = None

    @property
    def app(self):
        if self._app is None:
            from mycase_sync.app import App
            from mycase_sync.config import load_settings
            from mycase_sync.output import Progress, setup_logging

            settings = load_settings(self.env_file)
            setup_logging(self.verbose, self.quiet, self.log_file or settings.log_file)
            self._app = App(settings, progress=Progress)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def parse_date(value: str | None, option: str) -> dt.datetime | None:
    """A date or date-time given by hand; naive values are taken as UTC."""
    from mycase_sync.values import parse_timestamp

    if value is None:
        return None
    moment = parse_timestamp(value)
    if moment is None:
        raise click.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD or an ISO 8601 date-time)", param_hint=option)
    return moment


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mycase-sync")
@click.option("--env-file", type=click.Path(dir_okay=False), help="Read settings from this file instead of ./.env in the current directory (cron runs in $HOME: give an absolute path).")
@click.option("-v", "--verbose", count=True, help="Say more (repeat for HTTP-level detail).")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only, even on a terminal.")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Append one line per event and one summary line per finished run (UTC time, run id, level, message) to this file, whatever the terminal (or set MYCASE_SYNC_LOG).")
@click.pass_context
def main_group(ctx: click.Context, env_file, verbose, quiet, log_file):
    """Keep Case Status in step with MyCase.

    Imports every open and closed MyCase matter into Case Status, and pushes the
    documents and messages shared in Case Status back into MyCase, each exactly once.
    Settings come from the environment or a .env file; see the README.
    """
    ctx.obj = Context(env_file, verbose, quiet, log_file)
    ctx.call_on_close(ctx.obj.close)


def _job(ctx: click.Context, job: str, work, dry_run: bool = False) -> None:
    """Run a job under its lock; a dry run prints its plan and is not recorded as a run."""
    from mycase_sync.app import run_dry, run_job

    if not dry_run:
        ctx.exit(run_job(ctx.obj.app, job, work))
    code, counts = run_dry(ctx.obj.app, job, work)
    for line in counts.get("plan", []):
        click.echo(line)
    ctx.exit(code)


# --- auth -----------------------------------------------------------------------------------
@main_group.group(invoke_without_command=True)
@click.option("--no-browser", is_flag=True, help="Print the authorization URL on one line instead of opening a browser (for SSH sessions: forward the redirect port with ssh -L).")
@click.option("--redirect-url", is_flag=False, flag_value="", default=None, metavar="URL",
              help="Finish from the URL the browser landed on (paste it; without a value you are prompted, since URLs with & get mangled by shells).")
@click.option("--timeout", type=click.IntRange(min=1), default=300, show_default=True, help="Seconds to wait for the browser's redirect.")
@click.pass_context
def auth(ctx: click.Context, no_browser, redirect_url, timeout):
    """Connect a MyCase account (OAuth 2.0), or show/remove the connection."""
    if ctx.invoked_subcommand is not None:
        return
    from mycase_sync.mycase.auth import run_auth_flow

    # An empty --redirect-url prints the authorization URL first, then prompts for the landing URL.
    who = run_auth_flow(ctx.obj.app, say=click.echo, ask=lambda prompt: click.prompt(prompt, err=True),
                        no_browser=no_browser, redirect_url=redirect_url, timeout=timeout)
    from mycase_sync.health import connected_line

    click.echo(connected_line(who))


@auth.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--verify", is_flag=True, help="Also call MyCase to prove the connection works (refreshing the token if due).")
@click.pass_context
def auth_status(ctx: click.Context, as_json, verify):
    """Show whether MyCase is connected, as whom, and when the tokens expire (never the tokens).

    Reads the state store only, unless --verify. Exits 0 when connected, 3 when not. Warns when
    the authorization (refresh token) expires within 3 days: nothing refreshed it for 11 days.
    """
    import json

    from mycase_sync.health import format_when
    from mycase_sync.mycase.auth import connection_report, verify_connection

    report = verify_connection(ctx.obj.app) if verify else connection_report(ctx.obj.app)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    elif report["connected"]:
        email = f" <{report['user_email']}>" if report.get("user_email") and report["user_email"] != report["user"] else ""
        click.echo(f"MyCase: connected as {report['user'] or '?'}{email} to {report['firm'] or '?'}")
        click.echo(f"  access token expires:   {format_when(report['access_expires_at'])} (renewed automatically)")
        click.echo(f"  authorization expires:  {format_when(report['refresh_expires_at'])} (each refresh renews it)")
        click.echo(f"  last refresh:           {format_when(report['last_refresh_at'])}")
        if verify:
            click.echo("  verified: MyCase answered with this connection")
    elif report["needs_reauth"]:
        click.echo(f"MyCase: authorization expired or revoked ({report['reauth_reason'] or 'no reason given'}):"
                   " run `mycase-sync auth`")
    else:
        click.echo("MyCase: not connected: run `mycase-sync auth`")
    if not as_json:
        for line in report["warnings"]:
            click.echo(f"Warning: {line}", err=True)
    ctx.exit(0 if report["connected"] else 3)


@auth.command("logout")
@click.pass_context
def auth_logout(ctx: click.Context):
    """Delete the stored MyCase tokens."""
    from mycase_sync.mycase.auth import logout

    click.echo("Deleted the stored MyCase tokens." if logout(ctx.obj.app) else "MyCase was not connected; nothing to delete.")


# --- jobs -----------------------------------------------------------------------------------
@main_group.command("import-matters")
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
    from mycase_sync.values import positive_id

    bad = [c for c in case_ids if positive_id(c) is None]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} is not a MyCase case id (a number)", param_hint="--case")
    if report and not report.lower().endswith((".csv", ".json")):
        raise click.BadParameter("the report file must end in .csv or .json", param_hint="--report")
    if report and not os.path.isdir(os.path.dirname(os.path.abspath(report))):
        raise click.BadParameter(f"no such directory for {report!r}", param_hint="--report")
    from mycase_sync.sync.matters import import_matters as work

    app = ctx.obj.app

    def job(run_id: str) -> dict:
        return work(app, run_id, full=full, since=since_dt, case_ids=list(case_ids), dry_run=dry_run,
                    report=report, create_staff=create_staff or app.settings.create_staff)

    _job(ctx, "import-matters", job, dry_run)


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
    if since_dt is not None:
        from mycase_sync.sync.push import check_cutover

        check_cutover(app.store, job, since_dt)  # before a run is recorded: a refusal is a usage error

    def run(run_id: str) -> dict:
        return work(app, run_id, dry_run=dry_run, since=since_dt, all_items=all_items, retry_failed=retry_failed)

    _job(ctx, job, run, dry_run)


@main_group.command("push-documents")
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


@main_group.command("push-messages")
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


# --- operating ------------------------------------------------------------------------------
@main_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object (keys in the README).")
@click.option("--check", is_flag=True,
              help="Print only the problems, one line each, and exit 1 if there are any; print nothing and exit 0 when healthy.")
@click.pass_context
def status(ctx: click.Context, as_json, check):
    """Show whether the sync is healthy: the MyCase connection, each job's last run, what is pending or failed.

    Reads the state store only (no network), so monitoring can call it as often as it likes.
    The sync is unhealthy when: MyCase authorization is missing, revoked or expires within
    3 days; no import completed in 26 hours; no document or message push completed in 1 hour;
    matters failed to import; documents or messages parked as failed. Give it the same
    --env-file as cron, or it reads another state store.
    """
    import json

    from mycase_sync.status import print_table, report_for

    report = report_for(ctx.obj.app)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    elif check:
        for line in report["problems"]:
            click.echo(line)
    else:
        from rich.console import Console

        print_table(report, Console(highlight=False, soft_wrap=True))
    ctx.exit(1 if check and report["problems"] else 0)


@main_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
def backup(ctx: click.Context, file):
    """Write a consistent copy of the state store to FILE (mode 0600), safe while jobs run.

    Restoring it (copy it back as the state store while no job runs) sends nothing twice: items
    pushed after the backup are found in MyCase by their marker and adopted, matters by their
    MyCase id in Case Status.
    """
    from pathlib import Path

    app = ctx.obj.app
    if not Path(app.settings.db_path).exists():
        raise click.ClickException(f"no state store at {app.settings.db_path}: nothing to back up")
    written = app.store.backup(file)
    click.echo(f"Backed up {app.settings.db_path} to {written}.")


@main_group.command("accept-casestatus-key")
@click.pass_context
def accept_casestatus_key(ctx: click.Context):
    """Record the configured CASESTATUS_API_KEY as this state store's, after rotating the key.

    A store refuses a Case Status key other than the one it was built with (exit 2), so that it is
    never applied to another account. After Case Status gave your firm a new key, run this once
    with the new key configured: it checks that the new key reaches the cases this store imported,
    then records it.
    """
    from mycase_sync.ownership import accept_casestatus_key as accept

    app = ctx.obj.app
    client = app.new_casestatus_client()
    try:
        checked = accept(app.store, client, app.settings.casestatus_api_key)
    finally:
        client.close()
    click.echo(f"Recorded the new Case Status API key for {app.settings.db_path} ({checked}).")


@main_group.command("demo")
@click.option("--matters", type=click.IntRange(10, 5000), default=300, show_default=True, metavar="N",
              help="How many matters the sample firm has.")
@click.pass_context
def demo(ctx: click.Context, matters):
    """Try everything against a built-in sandbox firm (start here after installing).

    Starts emulated MyCase and Case Status on 127.0.0.1 with a sample firm, connects
    (consent is given automatically), runs the three jobs and status with a throw-away
    state store, and prints what happened in a few lines. It never touches
    the real services, your settings (--env-file, .env, the environment), your log file
    or your real state store.
    """
    from mycase_sync.demo import run_demo

    ctx.exit(run_demo(click.echo, matters=matters, verbose=ctx.obj.verbose, quiet=ctx.obj.quiet))


class _LazySandbox(click.Group):
    """`sandbox` is loaded only when asked for: it pulls in the emulator."""

    def _real(self) -> click.Group:
        from mycase_sync.sandbox.cli import sandbox_group

        return sandbox_group

    def list_commands(self, ctx):
        return self._real().list_commands(ctx)

    def get_command(self, ctx, name):
        return self._real().get_command(ctx, name)


main_group.add_command(_LazySandbox(name="sandbox", help="Run the built-in emulator of MyCase and Case Status (for trying things out)."))


INTERRUPTED_LINE = "mycase-sync: interrupted; nothing lost, run it again to continue"


def main(argv: list[str] | None = None) -> None:
    """Entry point: every SyncError becomes one line on stderr and its exit code, never a traceback."""
    from mycase_sync.redact import redact as redact_only
    from mycase_sync.signals import EXIT_SIGINT, Interrupted, handled
    from mycase_sync.text import clean_line

    def redact(text) -> str:  # what we print of an error: no secret, and one clean line
        return clean_line(redact_only(text))

    for stream in (sys.stdout, sys.stderr):  # text a service sent never stops a run at print time
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    try:
        with handled():  # SIGINT, SIGTERM, SIGHUP: Interrupted, at a safe point
            code = main_group.main(args=argv, prog_name="mycase-sync", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except Interrupted as exc:
        click.echo(INTERRUPTED_LINE, err=True)
        code = exc.exit_code
    except click.exceptions.Abort as exc:  # a prompt that got no answer (end of input)
        if isinstance(exc.__context__, KeyboardInterrupt):
            click.echo(INTERRUPTED_LINE, err=True)
            code = EXIT_SIGINT
        else:
            click.echo("Aborted.", err=True)
            code = EXIT_TEMPORARY
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except LockHeld as exc:
        # The previous run is still going: normal under cron (a slow backfill overlapping the next
        # tick), so cron gets no mail for it; a person at a terminal, -v and the log file still see it.
        from mycase_sync.output import is_terminal

        if is_terminal():
            click.echo(f"mycase-sync: {redact(exc)}", err=True)
        else:
            logging.getLogger("mycase_sync").info("%s", exc)
        code = exc.exit_code
    except SyncError as exc:
        click.echo(f"mycase-sync: {redact(exc)}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo(INTERRUPTED_LINE, err=True)
        code = EXIT_SIGINT
    except OSError as exc:
        click.echo(f"mycase-sync: {redact(exc)}", err=True)
        code = EXIT_CONFIG
    except Exception as exc:  # a bug of ours: one redacted line, never a traceback with URLs in it
        click.echo(f"mycase-sync: internal error ({type(exc).__name__}): {redact(exc)}; run again with -v and report it", err=True)
        code = 1
    sys.exit(code or 0)
