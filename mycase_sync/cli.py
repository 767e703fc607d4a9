"""The command line: the top-level group, its options, and the one place errors become exit codes.

Each family of commands lives in mycase_sync.commands; the work lives in the modules they call.
Imports of the heavy parts happen inside each command, so `--help` and idle cron runs start fast.
"""

from __future__ import annotations

import logging
import sys

import click

from mycase_sync.commands.auth import auth
from mycase_sync.commands.jobs import import_matters, parse_date, push_documents, push_messages  # noqa: F401
from mycase_sync.commands.operating import accept_casestatus_key, backup, demo, sandbox, status
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
            for line in settings.warnings:
                logging.getLogger("mycase_sync").warning("%s", line)
            self._app = App(settings, progress=Progress)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


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


for _command in (auth, import_matters, push_documents, push_messages, status, backup, accept_casestatus_key, demo,
                 sandbox):
    main_group.add_command(_command)


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
