"""The nightly run on a big firm that is already imported: only what changed is written.

Set-up (not measured): a firm of N matters is imported in full with no latency. Then the services
get their latency and rate limits, and a first night with C changed matters lets the tool find
their pace (as earlier nights would have). Measured: a quiet night, then a night where C random
matters changed in MyCase (their description, so updated_at moves to now). The floor of a run is
max(MyCase requests / MyCase limit, Case Status requests / Case Status limit).

Then a backfill that crashed (killed with SIGKILL part way through) and is run again: the second
run's requests and wall against its floor (README: the backfill "can be interrupted at any point").

Expected (issue #8): the MyCase pages holding the last 30 days of changes, one staff listing,
exactly C Case Status writes. Target (issue #18): wall / floor <= 1.3.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import time
from pathlib import Path

import harness

SETUP = {"CASESTATUS_RATE_LIMIT": "100000", "MYCASE_SYNC_TIMEOUT": "120"}  # Case Status unlimited in the set-up
NIGHTLY = {"MYCASE_SYNC_TIMEOUT": "60"}  # no rate variable: the tool finds the pace
TARGET = 1.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matters", type=int, default=100_000, help="cases in the firm (default 100000)")
    parser.add_argument("--changed", type=int, default=300, help="matters changed since the last run (default 300)")
    parser.add_argument("--latency-ms", type=float, default=100, help="latency of both services in the nightly run")
    parser.add_argument("--mycase-limit", type=float, default=25)
    parser.add_argument("--casestatus-limit", type=float, default=100)
    parser.add_argument("--crashed-matters", type=int, default=3000, help="firm of the crashed backfill (0: skip)")
    parser.add_argument("--crash-after", type=float, default=10.0, help="seconds before the backfill is killed")
    args = parser.parse_args()
    limits = {"mycase": args.mycase_limit, "casestatus": args.casestatus_limit}

    with harness.SandboxProcess(matters=args.matters, seed=5, mycase_rate_limit=25, casestatus_rate_limit=None,
                                with_activity=False) as sandbox, harness.workdir("incremental") as tmp:
        tool = harness.connected_tool(sandbox, Path(tmp), SETUP)
        setup = tool.run("import-matters").check("set-up import-matters", allowed=(0, 1))
        imported = sandbox.call("counts")["casestatus"]["cases"]
        harness.forget_pace(tool.db_path)  # the set-up's unlimited pace is not what the nights find
        tool.settings = NIGHTLY
        tool.env.pop("CASESTATUS_RATE_LIMIT")
        tool.env.update(NIGHTLY)
        for service, limit in limits.items():
            sandbox.call("set", service, "rate_limit", limit)
            if args.latency_ms:
                sandbox.call("set", service, "latency", (args.latency_ms / 1000,) * 2)
        sandbox.call("touch_cases", args.changed, 3)  # an earlier night: the tool finds the pace
        tool.run("import-matters").check("earlier nightly import-matters", allowed=(0, 1))
        pace = harness.stored_pace(tool.db_path)
        # A quiet night first: what does a run cost when nothing changed?
        sandbox.call("reset")
        quiet = tool.run("import-matters").check("quiet nightly import-matters", allowed=(0, 1))
        quiet_stats = sandbox.call("stats", reset=True)
        sandbox.call("touch_cases", args.changed, 11)
        run = tool.run("import-matters").check("nightly import-matters", allowed=(0, 1))
        stats = sandbox.call("stats")

    def row(name, result, stats):
        mycase, casestatus = stats["mycase"], stats["casestatus"]
        pages = mycase["by_route"].get("GET /v1/cases", 0)
        staff = mycase["by_route"].get("GET /v1/staff", 0)
        other = mycase["admitted"] - pages - staff
        floor = floor_of(stats, limits)
        return [name, f"{pages} case pages + {staff} staff" + (f" + {other} other" if other else ""),
                f"{casestatus['admitted']} ({casestatus['writes']} writes)",
                mycase["throttled"] + casestatus["throttled"], harness.seconds(result.wall), harness.seconds(floor),
                f"{result.wall / floor:.2f}", f"{result.peak_rss_mb:.0f} MB", f"exit {result.code}"]

    rows = [row("nothing changed", quiet, quiet_stats), row(f"{args.changed} matters changed", run, stats)]
    if args.crashed_matters:
        crashed, crashed_stats, killed_at = crashed_backfill(args, limits)
        rows.append(row(f"backfill of {args.crashed_matters:,} run again after a crash", crashed, crashed_stats))
    writes = stats["casestatus"]["writes"]
    def by_route(service):
        return ", ".join(f"{k} x{v}" for k, v in sorted(stats[service]["by_route"].items()))

    harness.print_table(
        f"Nightly import-matters on a {args.matters:,}-matter firm already imported",
        ["run", "MyCase requests", "Case Status requests", "429s", "wall", "floor", "wall / floor", "peak RSS",
         "outcome"], rows,
        [f"set-up: full import of {imported:,} matters in {harness.seconds(setup.wall)} (no latency), not measured",
         f"expected: the case pages of the last 30 days, one staff listing, exactly {args.changed} Case Status "
         f"writes: {'met' if writes == args.changed else 'NOT met'} ({writes} writes)",
         f"by route, {args.changed} changed: MyCase {by_route('mycase')}; Case Status {by_route('casestatus')}",
         "MyCase 'other': matters that failed earlier (malformed in MyCase) are read again by id on every run",
         f"nightly runs: latency {args.latency_ms:g} ms on both services, sandbox limits "
         f"{args.mycase_limit:g}/s and {args.casestatus_limit:g}/s; the pace found by an earlier night "
         f"(MyCase {pace.get('MyCase', {}).get('rate') or '-'}/s, Case Status "
         f"{pace.get('Case Status', {}).get('rate') or '-'}/s)",
         "floor = max(MyCase requests / MyCase limit, Case Status requests / Case Status limit), at the sandbox",
         *([f"crashed backfill: the first run killed (SIGKILL) after {killed_at:.0f} s; the row is the run "
            "after it (the pace the first run found is where it starts)"] if args.crashed_matters else []),
         harness.settings_note(NIGHTLY) + " (no rate variable)"])


def floor_of(stats: dict, limits: dict) -> float:
    return max(stats[service]["admitted"] / limit for service, limit in limits.items())


def crashed_backfill(args, limits: dict):
    """A first import killed part way through, then run again: the second run is measured."""
    latency = (args.latency_ms / 1000,) * 2 if args.latency_ms else None
    with harness.SandboxProcess(matters=args.crashed_matters, seed=1, mycase_latency=latency,
                                casestatus_latency=latency, mycase_rate_limit=limits["mycase"],
                                casestatus_rate_limit=limits["casestatus"]) as sandbox, \
            harness.workdir("crashed") as tmp:
        tool = harness.connected_tool(sandbox, Path(tmp), NIGHTLY)
        started = time.monotonic()
        first = subprocess.Popen([*harness.cli_command(), "import-matters"], env=tool.env, cwd=tool.workdir,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            first.wait(args.crash_after)
        except subprocess.TimeoutExpired:
            first.send_signal(signal.SIGKILL)
            first.wait()
        killed_at = time.monotonic() - started
        sandbox.call("reset")
        again = tool.run("import-matters").check("import-matters after the crash", allowed=(0, 1))
        return again, sandbox.call("stats"), killed_at


if __name__ == "__main__":
    main()
