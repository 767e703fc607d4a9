"""`mycase-sync demo`: every command once, against the built-in sandbox, in well under 30 seconds.

The newcomer's first run, so it must not depend on anything they have set up, and must not
touch anything real: the settings come from the sandbox alone (never the environment, ./.env
or --env-file), the state store lives in a temporary directory, and both emulated services
listen on 127.0.0.1. The steps are the real ones: the OAuth flow (the sandbox gives consent),
then each job through app.run_job, then the status report.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from mycase_sync.errors import EXIT_PARTIAL, SyncError
from mycase_sync.status import reason_counts
from mycase_sync.sync.matters import OUTSIDE_WINDOW

DEMO_SEED = 20240611
SHOWN_REASONS = 3
# The sandbox's limits (MyCase's documented 25 requests/second; its Case Status has none): the pace
# starts at these ceilings instead of finding them, so that the demo takes seconds, not more.
DEMO_ENV = {"MYCASE_RATE_LIMIT": "25", "CASESTATUS_RATE_LIMIT": "200", "MYCASE_SYNC_TIMEOUT": "10"}


@dataclass
class DemoRun:
    """What happened, for the summary and for tests."""

    exit_codes: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The worst job exit code beyond 1 (1: some records failed, which the sample firm is built to show)."""
        worst = max((code for code in self.exit_codes.values() if code != EXIT_PARTIAL), default=0)
        return worst or (EXIT_PARTIAL if self.violations or not self.report else 0)


def demo_settings(sandbox, workdir: Path):
    """Settings pointing at the sandbox and a throw-away store, from nothing the user has set."""
    from mycase_sync.config import load_settings

    no_file = workdir / "demo.env"  # an explicit, empty settings file: ./.env is never read
    no_file.touch()
    environ = {**sandbox.env(), **DEMO_ENV, "MYCASE_SYNC_DB": str(workdir / "state.db"), "HOME": str(workdir)}
    return load_settings(env_file=no_file, environ=environ)


@contextlib.contextmanager
def _no_proxy_for_loopback() -> Iterator[None]:
    """A proxy set in the user's environment must not swallow requests to the sandbox on 127.0.0.1."""
    saved = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
    extra = "127.0.0.1,localhost"
    for name in saved:
        os.environ[name] = f"{saved[name]},{extra}" if saved[name] else extra
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def connect(app, echo: Callable[[str], None]) -> None:
    """The real OAuth flow: start it, let the sandbox's sign-in page consent, finish from the landing URL."""
    import requests

    from mycase_sync.health import connected_line
    from mycase_sync.mycase.auth import authorize_url, begin_pending, run_auth_flow

    state = begin_pending(app.store)
    with requests.Session() as browser:
        answer = browser.get(authorize_url(app.settings, state), allow_redirects=False, timeout=app.settings.timeout)
    landing = answer.headers.get("Location")
    if answer.status_code != 302 or not landing:
        raise SyncError(f"demo: the sandbox's sign-in page answered HTTP {answer.status_code} without a redirect")
    who = run_auth_flow(app, say=lambda text, err=False: None, ask=lambda prompt: landing, redirect_url=landing)
    echo(connected_line(who))


def _jobs(app) -> list[tuple[str, Callable[[str], dict]]]:
    from mycase_sync.sync.documents import push_documents
    from mycase_sync.sync.matters import import_matters
    from mycase_sync.sync.messages import push_messages

    return [
        ("import-matters", lambda run_id: import_matters(
            app, run_id, full=False, since=None, case_ids=[], dry_run=False, report=None, create_staff=False)),
        ("push-documents", lambda run_id: push_documents(app, run_id)),
        ("push-messages", lambda run_id: push_messages(app, run_id)),
    ]


def run(matters: int = 300, echo: Callable[[str], None] = print,
        before: Callable | None = None, after: Callable | None = None) -> DemoRun:
    """Start the sandbox, connect, run the three jobs and status; returns what happened.

    `before(sandbox)` and `after(sandbox, app)` let tests set faults and look at both services.
    """
    from mycase_sync.app import App, run_job
    from mycase_sync.sandbox.server import Sandbox, SandboxConfig
    from mycase_sync.status import collect

    result = DemoRun()
    config = SandboxConfig(seed=DEMO_SEED, matters=matters, with_activity=True)
    with tempfile.TemporaryDirectory(prefix="mycase-sync-demo-") as tmp, _no_proxy_for_loopback(), \
            Sandbox(config) as sandbox:
        from mycase_sync.output import Progress

        app = App(demo_settings(sandbox, Path(tmp)), progress=Progress)
        if before is not None:
            before(sandbox)
        try:
            echo(f"Sandbox: a sample firm of {matters} MyCase matters, with client messages and documents in"
                 " Case Status; both services emulated on 127.0.0.1, a throw-away state store.")
            connect(app, echo)
            for job, work in _jobs(app):
                started = time.monotonic()
                try:
                    result.exit_codes[job] = run_job(app, job, work)
                except SyncError as exc:
                    result.exit_codes[job] = exc.exit_code
                    echo(f"{job}: stopped (exit {exc.exit_code}): {exc}")
                    continue
                result.seconds[job] = time.monotonic() - started
                result.counts[job] = (app.store.last_run(job) or {}).get("counts") or {}
                for line in _job_lines(job, result, app.store):
                    echo(line)
            result.report = collect(app.store)
            if after is not None:
                after(sandbox, app)
        finally:
            app.close()
        result.violations = list(sandbox.mycase.violations) + list(sandbox.casestatus.violations)
    return result


def _job_lines(job: str, result: DemoRun, store) -> list[str]:
    counts = result.counts[job]
    took = f"({result.seconds[job]:.1f} s)"
    failed = f", {counts['failed']} failed" if counts.get("failed") else ""
    if job != "import-matters":
        what = "documents filed in their MyCase matters" if job == "push-documents" else "messages posted as MyCase case notes"
        waiting = f", {counts['waiting']} waiting for their case" if counts.get("waiting") else ""
        return [f"{job}: {counts.get('sent', 0)} {what}{waiting}{failed} {took}"]
    done = ", ".join(f"{counts[key]} {key}" for key in ("updated", "closed", "reopened") if counts.get(key))
    skipped = f", {counts['skipped']} skipped" if counts.get("skipped") else ""
    lines = [f"{job}: {counts.get('created', 0)} matters created in Case Status{', ' + done if done else ''}"
             f"{skipped}{failed} {took}"]
    if counts.get(OUTSIDE_WINDOW):
        lines.append(f"  {counts[OUTSIDE_WINDOW]} left out: last updated more than 10 years ago (outside the"
                     " import's window)")
    for state in ("skipped", "failed"):
        shown = reason_counts(store, state, SHOWN_REASONS)
        lines += [f"  {group['count']} {state}: {group['reason']}" for group in shown]
        rest = counts.get(state, 0) - sum(group["count"] for group in shown)
        if rest > 0:
            lines.append(f"  {rest} more {state} for other reasons (`mycase-sync status` lists them)")
    return lines


def run_demo(echo: Callable[[str], None], matters: int = 300, verbose: int = 0, quiet: bool = False) -> int:
    """The `demo` command: run, print a few lines; exit 0 when every step ran against the sandbox.

    Records the sample firm cannot import (it has deliberately broken ones) are reported, not a
    failure of the demo: a job that ends with exit 1 ran to the end.
    """
    from mycase_sync.output import setup_logging

    setup_logging(verbose, errors_only=not verbose)  # the jobs' own lines only with -v; never the user's log file
    if quiet:
        echo = lambda line: None  # noqa: E731
    started = time.monotonic()
    result = run(matters, echo)
    problems = result.report.get("problems", [])
    if problems:
        echo(f"status --check: {len(problems)} problem{'s' if len(problems) > 1 else ''}"
             " (the sample firm has deliberately broken records):")
        echo("\n".join(f"  - {line}" for line in problems))
    else:
        echo("status --check: healthy")
    for line in result.violations:
        echo(f"sandbox: the client broke the API contract: {line}")
    code = result.exit_code
    verdict = "finished" if code == 0 else "FAILED"
    echo(f"Demo {verdict} in {time.monotonic() - started:.1f} s; the sandbox and its state store are gone."
         " Next: README, \"Setting it up\".")
    return code
