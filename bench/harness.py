"""What every benchmark shares: the sandbox in its own process, the real CLI as a subprocess, one table.

Why a separate process for the sandbox: the emulator is Python too, and on a small machine it would
share the tool's interpreter lock, page cache and RSS if it ran in the benchmark's process. Here only
the tool is measured: wall time and peak RSS come from `os.wait4` on the CLI's own process, and the
request counts come from the sandbox's journal (what actually reached the services).
"""
from __future__ import annotations

import multiprocessing
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Variables from the developer's shell must not change what is measured.
_OURS = ("MYCASE_", "CASESTATUS_", "XDG_STATE_HOME")


# --- the sandbox, in a child process --------------------------------------------------------------
def _stats(service) -> dict:
    """What reached one service since the last reset: totals, writes, 429s, per route and status."""
    with service.lock:
        journal = list(service.journal)
        by_route = dict(service.counters)
        violations = len(service.violations)
        crashes = len(service.crashes)
    limited = [e for e in journal if service.is_rate_limited_path(e["path"])]
    return {
        "requests": len(journal),
        # what counts against the service's rate limit: API requests it admitted (not its own 429s)
        "admitted": sum(1 for e in limited if not e.get("rate_limited")),
        "throttled": sum(1 for e in journal if e.get("rate_limited")),
        "writes": sum(1 for e in journal if e["write"] and not e.get("rate_limited")),
        "statuses": dict(Counter(e["status"] for e in journal)),
        "by_route": by_route,
        "violations": violations,
        "crashes": crashes,
        "first_at": journal[0]["at"].timestamp() if journal else None,
        "last_at": journal[-1]["at"].timestamp() if journal else None,
    }


def _op_stats(sandbox, reset: bool = False) -> dict:
    out = {"mycase": _stats(sandbox.mycase), "casestatus": _stats(sandbox.casestatus)}
    if reset:
        _op_reset(sandbox)
    return out


def _op_reset(sandbox) -> None:
    sandbox.mycase.reset_journal()
    sandbox.casestatus.reset_journal()


def _op_touch_cases(sandbox, n: int, seed: int = 0) -> list[int]:
    """Change the description of n random matters that are in Case Status (updated_at becomes now).

    Only imported ones: a matter the tool skips (no Case Status user for its lead attorney) or cannot
    map would change nothing there, and the expected write count would be unclear.
    """
    import random

    with sandbox.casestatus.lock:
        imported = {str(case.get("integration_id")) for case in sandbox.casestatus.cases.values()}
    with sandbox.mycase.lock:
        ids = sorted(cid for cid in sandbox.mycase.cases if str(cid) in imported)
    chosen = random.Random(seed).sample(ids, n)
    for case_id in chosen:
        old = sandbox.mycase.cases[case_id].get("description") or ""
        sandbox.mycase.update_case(case_id, description=f"{old} (updated by the benchmark)".strip())
    return chosen


def _op_case_ids(sandbox, n: int) -> list[int]:
    with sandbox.mycase.lock:
        return sorted(sandbox.mycase.cases)[:n]


def _op_counts(sandbox) -> dict:
    """How much the tool left in each service: for checking that a run did its work."""
    with sandbox.casestatus.lock:
        cs = {"cases": len(sandbox.casestatus.cases), "messages": len(sandbox.casestatus.messages),
              "files": len(sandbox.casestatus.files)}
    with sandbox.mycase.lock:
        mc = {"cases": len(sandbox.mycase.cases), "notes": len(sandbox.mycase.notes),
              "documents": len(sandbox.mycase.documents)}
    return {"casestatus": cs, "mycase": mc}


def _op_add_file(sandbox, integration_id: str, file_name: str, size: int) -> dict:
    return sandbox.casestatus.add_file(integration_id, file_name, size=size)


def _op_add_messages(sandbox, case_ids: list[str], text: str) -> int:
    """One new client message on each of these cases; returns how many."""
    for case_id in case_ids:
        sandbox.casestatus.add_message(str(case_id), "incoming", text, "Jane Doe")
    return len(case_ids)


def _op_count(sandbox, service: str, method: str, path_regex: str) -> int:
    """Requests of `method` to paths matching `path_regex` since the last reset."""
    return getattr(sandbox, service).count(method, path_regex)


def _op_document_sizes(sandbox) -> list[int]:
    with sandbox.mycase.lock:
        return [d["versions"][-1].get("size") for d in sandbox.mycase.documents.values() if d.get("versions")]


def _op_timeline(sandbox) -> list[tuple]:
    """(seconds, service, method, path, status, rate limited) of every request: for finding stalls."""
    rows = []
    for service in (sandbox.mycase, sandbox.casestatus):
        with service.lock:
            rows += [(e["at"].timestamp(), service.name, e["method"], e["path"], e["status"],
                      bool(e.get("rate_limited"))) for e in service.journal]
    return sorted(rows)


def _op_set(sandbox, service: str, knob: str, value) -> None:
    setattr(getattr(sandbox, service), knob, value)


OPS = {
    "env": lambda sandbox: sandbox.env(),
    "issue_tokens": lambda sandbox: sandbox.mycase.issue_tokens(),
    "stats": _op_stats,
    "reset": _op_reset,
    "touch_cases": _op_touch_cases,
    "case_ids": _op_case_ids,
    "counts": _op_counts,
    "add_file": _op_add_file,
    "add_messages": _op_add_messages,
    "count": _op_count,
    "document_sizes": _op_document_sizes,
    "set": _op_set,
    "timeline": _op_timeline,
    "cpu": lambda sandbox: time.process_time(),  # the sandbox process's own CPU seconds so far
}


def _serve(conn, config: dict) -> None:
    """Child process: run the Sandbox and answer (op, args, kwargs) messages until told to stop."""
    from mycase_sync.sandbox.server import Sandbox, SandboxConfig

    try:
        sandbox = Sandbox(SandboxConfig(**config)).start()
    except BaseException as exc:  # tell the parent instead of leaving it waiting
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", sandbox.env()))
    try:
        while True:
            try:
                op, args, kwargs = conn.recv()
            except EOFError:
                return
            if op == "stop":
                conn.send(("ok", None))
                return
            try:
                conn.send(("ok", OPS[op](sandbox, *args, **kwargs)))
            except Exception as exc:
                conn.send(("error", f"{op}: {type(exc).__name__}: {exc}"))
    finally:
        sandbox.stop()


class SandboxProcess:
    """The sandbox (both services) in a child process; `call(op, ...)` runs one of OPS there."""

    def __init__(self, **config):
        self.config = config
        self.env: dict[str, str] = {}
        self._proc = None
        self._conn = None
        self.started_in = 0.0

    def __enter__(self) -> "SandboxProcess":
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        started = time.perf_counter()
        self._proc = ctx.Process(target=_serve, args=(child, self.config), daemon=True, name="sandbox")
        self._proc.start()
        child.close()
        self.env = self._answer()
        self.started_in = time.perf_counter() - started
        return self

    def _answer(self):
        if not self._conn.poll(600):
            raise RuntimeError("the sandbox process did not answer within 10 minutes")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"sandbox: {value}")
        return value

    def call(self, op: str, *args, **kwargs):
        self._conn.send((op, args, kwargs))
        return self._answer()

    def __exit__(self, *exc) -> None:
        try:
            if self._proc.is_alive():
                self._conn.send(("stop", (), {}))
                self._conn.poll(10) and self._conn.recv()
        except (BrokenPipeError, EOFError, OSError):
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()


# --- the tool, as cron runs it --------------------------------------------------------------------
def cli_command() -> list[str]:
    """The installed `mycase-sync` script beside this interpreter (what cron runs), else `python -m`."""
    script = Path(sys.executable).parent / "mycase-sync"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "mycase_sync"]


@dataclass
class Run:
    """One finished child process: exit code, wall seconds, peak RSS in MB, CPU seconds, its output."""

    code: int
    wall: float
    peak_rss_mb: float
    cpu: float
    stdout: str
    stderr: str

    def check(self, what: str, allowed=(0,)) -> "Run":
        if self.code not in allowed:
            tail = (self.stderr or self.stdout).strip().splitlines()[-5:]
            raise SystemExit(f"{what}: exit {self.code}\n" + "\n".join(tail))
        return self


# Linux charges a child, at exec, with the RSS of the process it was forked from (ru_maxrss counts the
# old address space, even after vfork). Forked straight from this script, every CLI run would report
# at least this script's size. So each run is forked by a minimal interpreter (python -S -I, ~8 MB,
# smaller than any run of the tool), which reports the child's own wall time and peak RSS.
_LAUNCHER = """
import os, sys, time
out, argv = int(sys.argv[1]), sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
os.write(out, b"%r %d %r" % (time.perf_counter() - started, usage.ru_maxrss, usage.ru_utime + usage.ru_stime))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_process(argv: list[str], env: dict | None = None, cwd: str | Path | None = None,
                timeout: float = 3600) -> Run:
    """Run argv to completion: exit code, wall time (fork to reap), peak RSS and CPU time (wait4), output."""
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen([sys.executable, "-S", "-I", "-c", _LAUNCHER, str(write_end), *argv],
                                    env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    pass_fds=(write_end,), start_new_session=True)
        finally:
            os.close(write_end)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SystemExit(f"{' '.join(argv[:3])}: still running after {timeout:.0f} s, killed")
        with os.fdopen(read_end, "rb") as report:
            figures = report.read().split()
        if len(figures) != 3:
            raise SystemExit(f"could not run {argv[0]} (exit {code})")
        out.seek(0)
        err.seek(0)
        return Run(code, float(figures[0]), int(figures[1]) / 1024, float(figures[2]),
                   out.read().decode(errors="replace"), err.read().decode(errors="replace"))


class Tool:
    """The real CLI with its own state store and a clean environment pointed at one sandbox."""

    def __init__(self, sandbox_env: dict, workdir: Path, settings: dict | None = None):
        self.workdir = Path(workdir)
        self.db_path = self.workdir / "state" / "state.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
        env.update(sandbox_env)
        env["MYCASE_SYNC_DB"] = str(self.db_path)
        env["XDG_STATE_HOME"] = str(self.workdir / "xdg")
        env.update(settings or {})
        self.env = env
        self.settings = dict(settings or {})

    def connect(self, token_set: dict) -> None:
        """Store a MyCase token set, as `mycase-sync auth` leaves it."""
        from mycase_sync.mycase.tokens import save_token_set
        from mycase_sync.store import open_store

        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        store = open_store(self.db_path)
        try:
            save_token_set(store, token_set)
        finally:
            store.close()

    def run(self, *args: str, timeout: float = 3600) -> Run:
        return run_process([*cli_command(), *args], env=self.env, cwd=self.workdir, timeout=timeout)


def imported_ids(db_path: Path) -> list[str]:
    """MyCase ids of the matters a tool's store has imported, in id order."""
    from mycase_sync.store import open_store

    store = open_store(db_path)
    try:
        return [mid for mid, _ in store.matters.sample_imported(limit=1_000_000)]
    finally:
        store.close()


def bare_python() -> Run:
    """The interpreter doing nothing, in the same conditions: the start-up floor."""
    return run_process([sys.executable, "-c", "pass"], env=dict(os.environ))


def connected_tool(sandbox: SandboxProcess, workdir: Path, settings: dict) -> Tool:
    tool = Tool(sandbox.env, workdir, settings)
    tool.connect(sandbox.call("issue_tokens"))
    return tool


def workdir(prefix: str) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=f"mycase-bench-{prefix}-")


# --- figures --------------------------------------------------------------------------------------
def median(values) -> float:
    return statistics.median(values)


def machine() -> str:
    """One line naming where the figures came from."""
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if found:
            cpu = found.group(1).strip()
    except OSError:
        pass
    mem = ""
    try:
        found = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        if found:
            mem = f", {int(found.group(1)) / 1024 ** 2:.0f} GB RAM"
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPUs{mem}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}")


def print_table(title: str, headers: list[str], rows: list[list], notes: list[str] = ()) -> None:
    """A Markdown table (pasteable into bench/README.md) with a title line and notes under it."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    print(f"\n### {title}\n")
    print(line(cells[0]))
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells[1:]:
        print(line(row))
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    print(f"- machine: {machine()}")
    sys.stdout.flush()


def stored_pace(db_path: Path) -> dict:
    """The pace the tool kept in its state store, by service: {"rate", "refused", "updated_at"}."""
    from mycase_sync.store import open_store

    store = open_store(db_path)
    try:
        return store.pacing.read()
    finally:
        store.close()


def remember_pace(db_path: Path, pace: dict) -> None:
    """Put a pace (as stored_pace gives it) in a store, as if an earlier run had found it."""
    from mycase_sync.store import open_store

    store = open_store(db_path)
    try:
        for service, found in pace.items():
            store.pacing.keep(service, found["rate"], found["refused"] or 0.0)
    finally:
        store.close()


def forget_pace(db_path: Path) -> None:
    """No pace known, as before a first run: the store's and the files shared by running jobs."""
    from mycase_sync.pacing import rate_file
    from mycase_sync.store import open_store

    store = open_store(db_path)
    try:
        store.pacing.forget()
    finally:
        store.close()
    for service in ("MyCase", "Case Status"):
        rate_file(db_path, service).unlink(missing_ok=True)


def busiest_second(arrivals: list[tuple[float, bool]]) -> tuple[int, int]:
    """The most requests that arrived within any one second, and how many of those were refused."""
    arrivals = sorted(arrivals)
    most, refused, start = (0, 0), 0, 0
    for end, (moment, limited) in enumerate(arrivals):
        refused += limited
        while moment - arrivals[start][0] >= 1.0:
            refused -= arrivals[start][1]
            start += 1
        most = max(most, (end - start + 1, refused))
    return most


def settings_note(settings: dict) -> str:
    return "tool settings: " + ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def free_disk_gb(path: str | Path) -> float:
    return shutil.disk_usage(path).free / 1024 ** 3


def require_job(module: str) -> None:
    """Say plainly which command is not there yet instead of timing an ImportError."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise SystemExit(f"{module} is not in this checkout yet: nothing to measure")
