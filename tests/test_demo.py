"""`mycase-sync demo`: the newcomer's first command, end to end.

The real CLI runs it in an environment that tries hard to send it elsewhere (settings pointing at
unreachable services, a state store and log file of its own, a ./.env, a dead proxy): it must
ignore all of it and leave nothing behind (its time, under 30 s, is bench/demo.py's to measure).
In-process runs check what it printed against what both emulated services hold, and that a
failing step is reported.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import pytest

from conftest import Cli
from mycase_sync import demo
from mycase_sync.mycase.auth import AuthFlowError

SMALL = 40  # matters, for the in-process runs


# A small firm by default; the demo's own size (300 matters, what a newcomer runs) under soak.
@pytest.mark.parametrize("matters, args", [(60, ("--matters", "60")), pytest.param(300, (), marks=pytest.mark.soak)],
                         ids=["60-matters", "default-size"])
def test_demo_end_to_end_ignores_the_users_settings_and_leaves_nothing(tmp_path, matters, args):
    real = tmp_path / "real"
    (tmp_path / "tmp").mkdir()
    (tmp_path / ".env").write_text(
        f"MYCASE_SYNC_DB={real}/dotenv-state.db\nMYCASE_DOCUMENTS_FOLDER=FromDotEnv\n"
        "CASESTATUS_API_URL=https://casestatus.invalid\n")
    env = {
        "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path / "tmp"), "HOME": str(tmp_path / "home"),
        "MYCASE_SYNC_DB": str(real / "state.db"), "MYCASE_SYNC_LOG": str(real / "sync.log"),
        "XDG_STATE_HOME": str(real / "xdg"),
        "MYCASE_AUTH_URL": "https://auth.mycase.invalid", "MYCASE_API_URL": "https://api.mycase.invalid/v1",
        "MYCASE_CLIENT_ID": "real-client", "MYCASE_CLIENT_SECRET": "real-secret-value",
        "CASESTATUS_API_KEY": "real-api-key-value",
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",  # a dead proxy
    }
    proc = subprocess.run([sys.executable, "-m", "mycase_sync", "demo", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # its time is measured by bench/demo.py
    assert proc.stderr == ""
    out = proc.stdout
    assert re.search(rf"^Sandbox: a sample firm of {matters} MyCase matters", out, re.M)
    assert re.search(r"^Connected to MyCase as .+, firm .+\.$", out, re.M)
    created = re.search(r"^import-matters: (\d+) matters created in Case Status.* \(\d+\.\d s\)$", out, re.M)
    documents = re.search(r"^push-documents: (\d+) documents filed in their MyCase matters.* \(\d+\.\d s\)$", out, re.M)
    messages = re.search(r"^push-messages: (\d+) messages posted as MyCase case notes.* \(\d+\.\d s\)$", out, re.M)
    assert created and documents and messages, out
    assert (int(created.group(1)) > matters * 2 // 3 and int(documents.group(1)) > matters // 30
            and int(messages.group(1)) > matters // 6)  # at 300: more than 200, 10 and 50
    assert re.search(r"^  \d+ skipped: .+$", out, re.M), "skipped matters are shown with their reason"
    assert re.search(r"^status --check: ", out, re.M)
    assert re.search(r"^Demo finished in \d+\.\d s", out, re.M)
    assert len(out.splitlines()) <= 20, "a few readable lines"
    assert not real.exists(), "the user's state store, log file or XDG state was touched"
    assert list((tmp_path / "tmp").iterdir()) == [], "the demo left temporary files behind"
    for secret in ("real-secret-value", "real-api-key-value", "sandbox-secret-", "sandbox-key-"):
        assert secret not in out


def _run(before=None, after=None):
    lines: list[str] = []
    result = demo.run(SMALL, lines.append, before=before, after=after)
    return result, lines


def test_what_the_demo_prints_is_what_the_services_hold():
    seen = {}

    def after(sandbox, app):
        seen["cases"] = len(sandbox.casestatus.cases)
        seen["notes"] = sum("[casestatus:message:" in note["note"] for note in sandbox.mycase.notes.values())
        seen["documents"] = sum(1 for doc in sandbox.mycase.documents.values()
                                if "[casestatus:file:" in (doc.get("description") or "") and doc["bytes_sha256"])
        seen["db"] = app.settings.db_path

    result, lines = _run(after=after)
    assert result.violations == []
    assert result.exit_codes["push-documents"] == 0 and result.exit_codes["push-messages"] == 0
    assert result.exit_codes["import-matters"] in (0, 1)  # the sample firm has matters that cannot import
    assert result.exit_code == 0
    counts = result.counts
    assert seen["cases"] == counts["import-matters"]["created"] > 0
    assert seen["notes"] == counts["push-messages"]["sent"] > 0
    assert seen["documents"] == counts["push-documents"]["sent"] > 0
    assert lines[1].startswith("Connected to MyCase as ")
    assert lines[2].startswith(f"import-matters: {seen['cases']} matters created in Case Status")
    assert any(line.startswith(f"push-messages: {seen['notes']} messages posted") for line in lines)
    assert not seen["db"].exists(), "the throw-away state store outlived the demo"
    report = result.report
    assert report["connection"]["connected"] is True
    for job in ("import-matters", "push-documents", "push-messages"):
        assert report["jobs"][job]["last_run"]["outcome"] in ("success", "partial")
    skipped = counts["import-matters"].get("skipped", 0)
    assert skipped == sum(int(m.group(1)) for m in (re.match(r"  (\d+) (?:more )?skipped", line) for line in lines) if m)
    # every matter of the firm is accounted for: the ones older than 10 years are said to be left out
    imported = counts["import-matters"]
    left_out = [line for line in lines if line.endswith("left out: last updated more than 10 years ago"
                                                        " (outside the import's window)")]
    assert left_out == [f"  {imported['outside_window']} left out: last updated more than 10 years ago"
                        " (outside the import's window)"]
    assert sum(imported.get(k, 0) for k in ("created", "skipped", "failed", "outside_window")) == SMALL


def test_a_step_that_cannot_reach_a_service_is_reported_and_fails_the_demo(monkeypatch):
    monkeypatch.setattr(demo, "DEMO_ENV", {**demo.DEMO_ENV, "MYCASE_SYNC_BACKOFF": "0.01"})  # retries, quickly

    def before(sandbox):  # Case Status drops every connection that lists messages
        sandbox.casestatus.faults.add("GET", r"^/v1/api/messages", "drop_before", times=1000)

    result, lines = _run(before=before)
    assert result.exit_codes["push-messages"] == 75
    assert result.exit_code == 75
    stopped = [line for line in lines if line.startswith("push-messages: stopped (exit 75): ")]
    assert len(stopped) == 1 and "/v1/api/messages" in stopped[0], lines
    assert not any(line.startswith("push-messages: 0 messages") for line in lines)


def test_refused_consent_stops_the_demo_with_the_auth_error():
    def before(sandbox):
        sandbox.mycase.consent = "deny"

    with pytest.raises(AuthFlowError, match="access was denied"):
        _run(before=before)


def test_demo_command_exit_code_and_quiet(capsys):
    from mycase_sync.cli import main
    from mycase_sync.output import LOGGER

    try:
        with pytest.raises(SystemExit) as exited:
            main(["-q", "demo", "--matters", str(SMALL)])
    finally:  # the command set up logging for this process: undo it for the other tests
        root = logging.getLogger(LOGGER)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.propagate, root.level = True, logging.NOTSET
    assert exited.value.code == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == "", "-q: nothing at all when every step ran"


def test_demo_rejects_a_silly_size(tmp_path):
    result = Cli(cwd=tmp_path).invoke("demo", "--matters", "0")  # a usage error: in this process
    assert result.code == 2
    assert "--matters" in result.stderr and "Traceback" not in result.stderr
