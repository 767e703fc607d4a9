"""Idle runs: what cron pays 288 times a day when nothing is new.

Brings a small firm fully in step (import-matters, then a first push-messages and push-documents
that take the backlog), then times, round after round and interleaved so drift hits all alike:
a bare `python -c pass`, `mycase-sync --help`, and idle `push-messages` / `push-documents`.
For each: median wall time, its excess over the bare interpreter, peak RSS, and the requests
that reached each service during the run (counted at the sandbox).

Targets (issue #8): at most 2 Case Status requests and 0 MyCase requests per idle run; under
0.4 s over the bare interpreter.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import harness

SETTINGS = {"MYCASE_SYNC_TIMEOUT": "30"}  # no rate variable: the tool finds the pace
TARGET_EXCESS = 0.4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matters", type=int, default=200, help="cases in the firm (default 200)")
    parser.add_argument("--rounds", type=int, default=10, help="timed runs of each command (default 10)")
    parser.add_argument("--importtime", action="store_true",
                        help="also print the slowest imports of an idle push-messages (python -X importtime)")
    args = parser.parse_args()

    with harness.SandboxProcess(matters=args.matters, seed=8, mycase_rate_limit=25,
                                casestatus_rate_limit=100) as sandbox, harness.workdir("idle") as tmp:
        tool = harness.connected_tool(sandbox, Path(tmp), SETTINGS)
        # Bring everything in step: after this, nothing is new for the push jobs.
        tool.run("import-matters").check("import-matters", allowed=(0, 1))  # 1: the malformed matters
        jobs = []
        for job, module in (("push-messages", "mycase_sync.sync.messages"),
                            ("push-documents", "mycase_sync.sync.documents")):
            harness.require_job(module)
            tool.run(job).check(f"first {job}")
            tool.run(job).check(f"second {job}")  # a cursor that settles on its second run shows here
            jobs.append(job)

        commands = {"python -c pass": None, "mycase-sync --help": ("--help",)}
        commands.update({f"mycase-sync {job}": (job,) for job in jobs})
        results: dict[str, list] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                sandbox.call("reset")
                run = harness.bare_python() if argv is None else tool.run(*argv)
                run.check(name)
                if argv and argv[0] != "--help" and (run.stdout or run.stderr):
                    raise SystemExit(f"{name}: an idle run must print nothing under cron, got:\n"
                                     f"{(run.stdout + run.stderr)[:500]}")
                results[name].append((run, sandbox.call("stats")))

        bare = harness.median(r.wall for r, _ in results["python -c pass"])
        rows = []
        met = True
        for name, runs in results.items():
            wall = harness.median(r.wall for r, _ in runs)
            mycase = max(s["mycase"]["requests"] for _, s in runs)
            casestatus = max(s["casestatus"]["requests"] for _, s in runs)
            excess = wall - bare
            if name.startswith("mycase-sync push"):
                met &= mycase == 0 and casestatus <= 2 and excess < TARGET_EXCESS
            rows.append([name, f"{wall * 1000:.0f} ms", f"{min(r.wall for r, _ in runs) * 1000:.0f} ms",
                         "-" if name == "python -c pass" else f"{excess * 1000:+.0f} ms",
                         f"{max(r.peak_rss_mb for r, _ in runs):.0f} MB", mycase, casestatus])
        harness.print_table(
            f"Idle runs ({args.rounds} rounds, {args.matters}-matter firm already in step)",
            ["command", "median wall", "min wall", "over bare python", "peak RSS", "MyCase requests",
             "Case Status requests"], rows,
            ["requests: the most seen in any one run, counted at the sandbox; no added latency",
             f"targets: 0 MyCase and <= 2 Case Status requests per idle run, < {TARGET_EXCESS * 1000:.0f} ms "
             f"over bare python: {'met' if met else 'NOT met'}",
             harness.settings_note(SETTINGS)])

        if args.importtime:
            print_importtime(tool, jobs[0] if jobs else "--help")


def print_importtime(tool: harness.Tool, job: str) -> None:
    """The ten slowest imports (cumulative) of one idle run: where start-up time goes."""
    env = dict(tool.env, PYTHONPROFILEIMPORTTIME="1")
    run = harness.run_process([*harness.cli_command(), job], env=env, cwd=tool.workdir)
    rows = []
    for line in run.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    rows.sort(reverse=True)
    harness.print_table(f"Slowest imports of an idle `{job}` (cumulative)", ["module", "cumulative"],
                        [[name, f"{us / 1000:.1f} ms"] for us, name in rows[:12]])


if __name__ == "__main__":
    main()
