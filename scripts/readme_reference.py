#!/usr/bin/env python3
"""Write the README's command reference from `--help`, so the two cannot drift.

    python scripts/readme_reference.py          # rewrite the reference in README.md
    python scripts/readme_reference.py --check  # exit 1 when README.md is not what --help says

The reference is every command's `--help` (subcommands included), as an 80-column terminal shows
it, between the two marker lines below (BEGIN, END). tests/test_readme_reference.py fails when it is out of
date: after changing a command, an option or a help text, run this script and commit README.md.
A development tool: not part of the installed package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- command reference: written by `python scripts/readme_reference.py` from --help; do not edit by hand -->"
END = "<!-- end of the command reference -->"
WIDTH = 78  # what click uses on an 80-column terminal
sys.path.insert(0, str(README.parent))  # the checkout's mycase_sync, installed or not


def helps() -> list[tuple[str, str]]:
    """(command path, its --help text) for the tool and every command under it, in help order."""
    from mycase_sync.cli import main_group

    found: list[tuple[str, str]] = []

    def visit(command: click.Command, name: str, parent: click.Context | None) -> None:
        extra = {"terminal_width": WIDTH, "max_content_width": WIDTH} if parent is None else {}
        ctx = command.make_context(name, [], parent=parent, resilient_parsing=True, **extra)
        found.append((ctx.command_path, command.get_help(ctx)))
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                visit(command.get_command(ctx, sub), sub, ctx)

    visit(main_group, "mycase-sync", None)
    return found


def reference() -> str:
    """The README's text between the markers (the markers excluded)."""
    parts = ["Every command's `--help`, as it prints it. `mycase-sync COMMAND --help` shows the same."]
    for path, text in helps():
        parts.append(f"### `{path}`\n\n```text\n{text.rstrip()}\n```")
    return "\n\n".join(parts)


def updated(readme: str) -> str:
    """`readme` with its reference replaced by the one --help gives now."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise SystemExit(f"README.md must hold the two marker lines once each, in order:\n{BEGIN}\n{END}")
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{reference()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    current = README.read_text(encoding="utf-8")
    wanted = updated(current)
    if "--check" in argv:
        if wanted != current:
            print("README.md's command reference differs from --help: run python scripts/readme_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        README.write_text(wanted, encoding="utf-8")
        print("README.md: command reference rewritten from --help")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
