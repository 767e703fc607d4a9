"""`mycase-sync doctor`: the options and the printing; the checks live in mycase_sync.doctor."""

from __future__ import annotations

import click


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as one JSON object (keys in the README).")
@click.pass_context
def doctor(ctx: click.Context, as_json):
    """Check that MyCase and Case Status behave as this tool assumes: run it before the first backfill.

    One line per assumption: `ok`; `differs` (what was seen, and after `->` what the tool does about
    it); `not checked` (why). It only reads: nothing is written to either service, nor to the state
    store but a MyCase token refresh. Exit 0 when all hold, 1 when something differs, 2 configuration,
    3 authorization (MyCase or the Case Status key), 75 a service unreachable.
    """
    import json

    from mycase_sync.doctor import run_doctor
    from mycase_sync.redact import redact
    from mycase_sync.text import clean_line

    def shown(text: str) -> str:  # service text: no secret, one clean line
        return clean_line(redact(text))

    report = run_doctor(ctx.obj.app)
    if as_json:
        data = report.as_dict()
        for check in data["checks"]:
            check["seen"], check["does"] = shown(check["seen"]), shown(check["does"])
        data["stops"] = [shown(s) for s in data["stops"]]
        click.echo(json.dumps(data, indent=2))
    else:
        for check in report.checks:
            does = f" -> {shown(check.does)}" if check.does else ""
            click.echo(f"{check.result:<11}  {check.assumption}: {shown(check.seen)}{does}")
        for stop in report.stops:
            click.echo(f"mycase-sync: {shown(stop)}", err=True)
    ctx.exit(report.exit_code)
