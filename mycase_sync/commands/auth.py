"""`mycase-sync auth`: connect a MyCase account, show the connection, or remove it."""

from __future__ import annotations

import click

from mycase_sync.commands.config import MYCASE, REQUESTS, STATE, reads


@click.group(invoke_without_command=True, epilog=reads(*MYCASE, "MYCASE_REDIRECT_URI", *REQUESTS, *STATE))
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
    who = run_auth_flow(ctx.obj.app, say=click.echo, ask=_ask,
                        no_browser=no_browser, redirect_url=redirect_url, timeout=timeout)
    from mycase_sync.health import connected_line

    click.echo(connected_line(who))


def _ask(prompt: str) -> str:
    """The line pasted after the prompt; "" when standard input ends first (Ctrl-D, </dev/null)."""
    try:
        return click.prompt(prompt, err=True, default="", show_default=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, EOFError):  # Ctrl-C stays an interruption
            click.echo(err=True)  # end the prompt's line
            return ""
        raise


@auth.command("status", epilog=reads(*STATE, *MYCASE, *REQUESTS, note=" (the last seven with --verify only)"))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--verify", is_flag=True, help="Also call MyCase to prove the connection works (refreshing the token if due).")
@click.pass_context
def auth_status(ctx: click.Context, as_json, verify):
    """Show whether MyCase is connected, as whom, and when the tokens expire (never the tokens).

    Reads the state store only, unless --verify. Warns when the authorization (refresh token)
    expires within 3 days: nothing refreshed it for 11 days.

    \b
    Exit codes:
      0   connected (with --verify: and MyCase answered with it)
      3   not connected, expired or revoked (with --verify: or MyCase refused it)
      2   (--verify) a setting is wrong, e.g. MYCASE_API_URL; the line names it
      75  (--verify) MyCase could not be reached: try again later
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


@auth.command("logout", epilog=reads(*STATE))
@click.pass_context
def auth_logout(ctx: click.Context):
    """Delete the stored MyCase tokens."""
    from mycase_sync.mycase.auth import logout

    click.echo("Deleted the stored MyCase tokens." if logout(ctx.obj.app) else "MyCase was not connected; nothing to delete.")
