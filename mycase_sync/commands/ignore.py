"""`mycase-sync ignore`: acknowledge matters and push items the firm will not fix, or take that back."""

from __future__ import annotations

import click

from mycase_sync.commands.config import STATE, reads

# A push item on the command line (KIND:ID) -> its ledger kind and the job that sends it
ITEM_KINDS = {"document": "push-documents", "message": "push-messages"}
REASON_LENGTH = 300


def _items(values: tuple[str, ...]) -> dict[str, list[int]]:
    """--item document:12 --item message:7 -> {"document": [12], "message": [7]}."""
    from mycase_sync.values import positive_id

    found: dict[str, list[int]] = {}
    for value in values:
        kind, _, number = value.partition(":")
        item_id = positive_id(number.strip())
        if kind.strip().lower() not in ITEM_KINDS or item_id is None:
            raise click.BadParameter(f"{value!r} is not KIND:ID (document:ID or message:ID, the Case Status id"
                                     " `mycase-sync status` lists)", param_hint="--item")
        found.setdefault(kind.strip().lower(), []).append(item_id)
    return found


@click.command("ignore", epilog=reads(*STATE))
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--item", "items", multiple=True, metavar="KIND:ID",
              help="A push item instead of a matter: document:ID or message:ID, the Case Status id `status` lists (repeatable).")
@click.option("--reason", metavar="TEXT", help="Why, in a few words (`status` shows it).")
@click.option("--undo", is_flag=True, help="Stop ignoring them: each goes back to where it stood.")
@click.pass_context
def ignore(ctx: click.Context, ids, items, reason, undo):
    """Stop retrying matters (MyCase case ids) or push items the firm will not fix.

    An ignored matter is left alone by import-matters: not retried, not imported, never a reason
    for exit 1 nor for `status --check`. An ignored push item (one parked as failed, say) is
    given up: never sent, and --retry-failed leaves it alone. `status` lists both, with the
    reason and when. --undo puts each back where it stood (a failed matter is retried by the next
    import; a parked item waits for --retry-failed). Takes the job's lock: exit 75 while it runs.
    """
    from mycase_sync.commands.jobs import parse_case_ids
    from mycase_sync.ignoring import Target, apply
    from mycase_sync.text import clean_line

    if not ids and not items:
        raise click.UsageError("name at least one MyCase case id, or --item KIND:ID")
    if undo and reason:
        raise click.UsageError("--reason goes with ignoring, not with --undo")
    matters = parse_case_ids(ids, "ID")
    by_kind = _items(items)
    targets = [Target("import-matters", None, matters)] if matters else []
    targets += [Target(ITEM_KINDS[kind], kind, numbers) for kind, numbers in by_kind.items()]
    note = clean_line(reason)[:REASON_LENGTH] if reason else None
    for line in apply(ctx.obj.app, targets, note, undo):
        click.echo(line)
