"""The benchmark scripts still run: tiny sizes, real CLI, real sandbox. Figures are not checked here.

Timing belongs in bench/README.md, never in an assertion: this only proves the scripts start the
sandbox, drive the CLI and print their table. They check the benchmarks, not the tool, and take
about 12 s together: soak tests (`python -m pytest -m soak`; CI runs them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
pytestmark = pytest.mark.soak


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300)


def test_idle_bench_prints_its_table():
    done = run_bench("idle.py", "--matters", "30", "--rounds", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "### Idle runs" in done.stdout
    for command in ("python -c pass", "mycase-sync --help", "mycase-sync push-messages", "mycase-sync push-documents"):
        assert f"| {command} " in done.stdout


def test_backfill_bench_prints_its_table():
    done = run_bench("backfill.py", "--matters", "40", "--latency-ms", "0", "--limits", "100", "--no-baseline",
                     "--together-matters", "30")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "### Backfill of 40 matters" in done.stdout
    assert "| 100/s " in done.stdout and "(known)" in done.stdout
    assert "### Three jobs started at once" in done.stdout


def test_memory_bench_prints_its_table():
    done = run_bench("memory.py", "--small", "40", "--large", "80", "--file-mb", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "### Peak memory" in done.stdout
    assert "push-documents, one" in done.stdout and "landed in MyCase whole" in done.stdout


def test_incremental_bench_prints_its_table():
    done = run_bench("incremental.py", "--matters", "120", "--changed", "5", "--latency-ms", "0",
                     "--crashed-matters", "60", "--crash-after", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "### Nightly import-matters" in done.stdout
    assert "| 5 matters changed " in done.stdout and "run again after a crash" in done.stdout


def test_demo_bench_prints_its_table():
    done = run_bench("demo.py", "--matters", "20", "--rounds", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "### The demo (1 run)" in done.stdout
    assert "| mycase-sync demo --matters 20 " in done.stdout
