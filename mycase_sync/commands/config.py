"""`mycase-sync config`: the settings in effect and where each came from; and which settings each
command reads, for its --help."""

from __future__ import annotations

import click

MYCASE = ("MYCASE_CLIENT_ID", "MYCASE_CLIENT_SECRET", "MYCASE_AUTH_URL", "MYCASE_API_URL", "MYCASE_RATE_LIMIT")
CASESTATUS = ("CASESTATUS_API_URL", "CASESTATUS_API_KEY", "CASESTATUS_RATE_LIMIT")
REQUESTS = ("MYCASE_SYNC_TIMEOUT", "MYCASE_SYNC_BACKOFF")
STATE = ("MYCASE_SYNC_DB", "MYCASE_SYNC_LOG")


def reads(*names: str, note: str = "") -> str:
    """The --help epilog naming the settings a command reads."""
    return f"Settings read (environment or env file; `mycase-sync config` shows them): {', '.join(names)}{note}."


@click.command("config", epilog="Reads every setting; opens no state store and sends no request.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def config(ctx: click.Context, as_json):
    """Show the settings in effect, where each came from, and the state store and log file paths.

    Each value comes from the environment, the env file (--env-file, or ./.env), or the default.
    Secrets (MYCASE_CLIENT_SECRET, CASESTATUS_API_KEY) show as set or not set, never their value.
    A bad setting stops it with one line naming the variable (exit 2), as it stops every command.
    """
    import json
    from pathlib import Path

    from mycase_sync.config import effective, load_settings

    settings = load_settings(ctx.obj.env_file)
    settings.check_phone_region()
    rows = effective(settings)
    log_file, log_from = (ctx.obj.log_file, "--log-file") if ctx.obj.log_file else (
        settings.log_file, settings.sources["MYCASE_SYNC_LOG"])
    store = Path(settings.db_path)
    report = {
        "env_file": str(settings.env_file) if settings.env_file else None,
        "settings": rows,
        "state_store": {"path": str(store), "exists": store.exists()},
        "log_file": {"path": log_file, "from": log_from if log_file else None},
        "warnings": [line for _, line in settings.warnings],
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"Env file: {report['env_file'] or 'none (no --env-file, no ./.env)'}")
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        source = f"  ({row['from']})" if row["from"] != "not set" else ""
        click.echo(f"  {row['name']:<{width}}  {row['value'] if row['value'] is not None else 'not set'}{source}")
    click.echo(f"State store: {store} ({'exists' if store.exists() else 'not created yet'})")
    click.echo(f"Log file: {f'{log_file} ({log_from})' if log_file else 'none'}")
    for line in report["warnings"]:
        click.echo(f"Warning: {line}")
