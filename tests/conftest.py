"""Shared fixtures: a throw-away state store, the sandbox over real HTTP, and the real CLI.

No test touches a real service or the user's real state: every test gets its own
MYCASE_SYNC_DB under tmp_path, and the environment is rebuilt from scratch for each CLI call.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Variables from the developer's shell must never leak into a test's configuration.
_OURS = ("MYCASE_", "CASESTATUS_", "XDG_STATE_HOME")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(_OURS):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Cli:
    """Runs `python -m mycase_sync ...` as a real subprocess with a controlled environment."""

    env: dict = field(default_factory=dict)
    cwd: Path | None = None

    def environment(self, extra: dict | None = None) -> dict:
        base = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
        base.update(self.env)
        base.update(extra or {})
        base.setdefault("MYCASE_SYNC_BACKOFF", "0.05")
        return base

    def popen(self, *args: str, extra_env: dict | None = None, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "mycase_sync", *args],
            env=self.environment(extra_env), cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, **kwargs,
        )

    def run(self, *args: str, extra_env: dict | None = None, input: str | None = None, timeout: float = 120) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "mycase_sync", *args],
            env=self.environment(extra_env), cwd=self.cwd, capture_output=True, text=True,
            input=input, timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
def sandbox_config():
    """Override in a test module to change the firm size, latency, lifetimes..."""
    from mycase_sync.sandbox.server import SandboxConfig

    return SandboxConfig(matters=60, seed=7)


@pytest.fixture
def sandbox(sandbox_config):
    from mycase_sync.sandbox.server import Sandbox

    with Sandbox(sandbox_config) as running:
        yield running


@pytest.fixture
def cli(sandbox, db_path, tmp_path) -> Cli:
    """The real CLI pointed at the sandbox, with its own state store (not yet connected)."""
    env = dict(sandbox.env())
    env["MYCASE_SYNC_DB"] = str(db_path)
    env["MYCASE_RATE_LIMIT"] = "22"
    env["CASESTATUS_RATE_LIMIT"] = "500"
    env["MYCASE_SYNC_TIMEOUT"] = "5"
    return Cli(env=env, cwd=tmp_path)


@pytest.fixture
def connected(cli, sandbox, db_path) -> Cli:
    """The CLI with a MyCase token already in the store, as after `mycase-sync auth`."""
    from mycase_sync.mycase.auth import save_token_set
    from mycase_sync.store import open_store

    store = open_store(db_path)
    try:
        save_token_set(store, sandbox.mycase.issue_tokens())
    finally:
        store.close()
    return cli
