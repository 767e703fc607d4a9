"""Private files whatever the umask: the log file 0600 (its lines name clients and attorneys), and
every directory the tool creates 0700, the parents of the state store's directory included."""

from __future__ import annotations

import os

from conftest import sandbox_cli, seed_tokens


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_under_umask_000_the_log_file_is_0600_and_every_directory_made_is_0700(sandbox, tmp_path):
    db_path = tmp_path / "xdg" / "deep" / "mycase-sync" / "state.db"
    cli = sandbox_cli(sandbox, tmp_path, db_path, MYCASE_RATE_LIMIT="1000", CASESTATUS_RATE_LIMIT="500")
    seed_tokens(sandbox, tmp_path / "seed" / "state.db")  # a store elsewhere: this run makes its own tree
    log = tmp_path / "sync.log"
    # (a job exits 3 on a store that does not exist, before making it: accept-casestatus-key makes it)
    proc = cli.popen("--log-file", str(log), "accept-casestatus-key", preexec_fn=lambda: os.umask(0))
    out, err = proc.communicate(timeout=120)
    assert log.exists(), err
    assert _mode(log) == 0o600
    for directory in (tmp_path / "xdg", tmp_path / "xdg" / "deep", db_path.parent):
        assert _mode(directory) == 0o700, directory
