"""Commands for watching and keeping the sync: status, backup, accept-casestatus-key, demo, sandbox."""

from __future__ import annotations

import click

from mycase_sync.commands.config import CASESTATUS, REQUESTS, STATE, reads


@click.command("status", epilog=reads(*STATE))
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


@click.command("backup", epilog=reads(*STATE))
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


@click.command("accept-casestatus-key", epilog=reads(*CASESTATUS, *REQUESTS, *STATE))
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


@click.command("demo", epilog="Settings read: none (the demo uses a sandbox and a throw-away state store).")
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


sandbox = _LazySandbox(name="sandbox", help="Run the built-in emulator of MyCase and Case Status (for trying things out).")
