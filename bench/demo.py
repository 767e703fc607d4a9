"""The demo: what a newcomer waits for right after installing.

Runs `mycase-sync demo` (its own in-process sandbox, a throw-away state store) a few times from a
clean environment whose HOME, state store and proxies point nowhere real, and prints its median and
worst wall time and its peak RSS.

Target (issue #7): under 30 seconds with the default firm of 300 matters.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import harness

TARGET_SECONDS = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matters", type=int, default=300,
                        help="matters in the demo firm (default 300, the demo's own)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs (default 3)")
    args = parser.parse_args()

    runs = []
    with harness.workdir("demo") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
               "XDG_STATE_HOME": str(home / "state"), "MYCASE_SYNC_DB": str(home / "real" / "state.db"),
               "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}  # the demo needs none
        for _ in range(args.rounds):
            run = harness.run_process([*harness.cli_command(), "demo", "--matters", str(args.matters)],
                                      env=env, cwd=home)
            run.check("mycase-sync demo")
            runs.append(run)
        if (home / "real").exists():
            raise SystemExit("the demo touched the real state store's directory")

    median = harness.median(r.wall for r in runs)
    worst = max(r.wall for r in runs)
    rows = [[f"mycase-sync demo --matters {args.matters}", harness.seconds(median), harness.seconds(worst),
             f"{max(r.peak_rss_mb for r in runs):.0f} MB"]]
    title = f"The demo ({args.rounds} run{'s' if args.rounds != 1 else ''})"
    harness.print_table(title, ["command", "median wall", "worst wall", "peak RSS"], rows,
                        [f"target: under {TARGET_SECONDS:.0f} s: {'met' if worst < TARGET_SECONDS else 'NOT met'}",
                         "wall time includes starting the sandbox, auth, the three jobs and status"])


if __name__ == "__main__":
    main()
