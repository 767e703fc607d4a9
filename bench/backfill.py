"""The first import (10-year backfill) against the services' rate limits and latency.

A fresh firm of N matters; both services answer after a fixed latency and refuse past their rate
limit (429), as the sandbox enforces them. The tool's own limits are set just under the sandbox's.
The physical floor of a run is max(MyCase requests / MyCase limit, Case Status requests / Case Status
limit), with the requests counted at the sandbox; a good tool runs close to it. The same run with one
worker is the naive baseline (one request per round trip).

Target (issue #8): wall / floor <= 1.15.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import harness

TARGET = 1.15


def backfill(args, workers: int | None) -> dict:
    latency = (args.latency_ms / 1000,) * 2 if args.latency_ms else None
    cs_latency = (args.casestatus_latency_ms / 1000,) * 2 if args.casestatus_latency_ms else None
    settings = {"MYCASE_RATE_LIMIT": f"{harness.tool_rate(args.mycase_limit, args.tool_share):g}",
                "CASESTATUS_RATE_LIMIT": f"{harness.tool_rate(args.casestatus_limit, args.tool_share):g}",
                "MYCASE_SYNC_TIMEOUT": "60"}
    if workers is not None:
        settings["MYCASE_SYNC_WORKERS"] = str(workers)
    with harness.SandboxProcess(matters=args.matters, seed=args.seed, mycase_latency=latency,
                                casestatus_latency=cs_latency if args.casestatus_latency_ms is not None else latency,
                                mycase_rate_limit=args.mycase_limit,
                                casestatus_rate_limit=args.casestatus_limit) as sandbox, \
            harness.workdir("backfill") as tmp:
        tool = harness.connected_tool(sandbox, Path(tmp), settings)
        run = tool.run("import-matters", *args.extra).check("import-matters", allowed=(0, 1))
        stats = sandbox.call("stats")
        counts = sandbox.call("counts")
    mycase, casestatus = stats["mycase"], stats["casestatus"]
    floor = max(mycase["admitted"] / args.mycase_limit, casestatus["admitted"] / args.casestatus_limit)
    from mycase_sync.config import default_workers

    workers_used = workers or default_workers(harness.tool_rate(args.mycase_limit, args.tool_share),
                                              harness.tool_rate(args.casestatus_limit, args.tool_share))
    return {"run": run, "stats": stats, "counts": counts, "floor": floor, "settings": settings,
            "workers": f"{workers_used}" if workers is not None else f"{workers_used} (default)",
            "span": max(s["last_at"] or 0 for s in (mycase, casestatus))
            - min(s["first_at"] or math.inf for s in (mycase, casestatus))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matters", type=int, default=3000, help="cases in the firm (default 3000)")
    parser.add_argument("--latency-ms", type=float, default=100, help="latency of both services (default 100)")
    parser.add_argument("--casestatus-latency-ms", type=float, default=None,
                        help="Case Status latency, if it should differ from --latency-ms")
    parser.add_argument("--mycase-limit", type=float, default=25, help="MyCase requests/s (default 25)")
    parser.add_argument("--casestatus-limit", type=float, default=100, help="Case Status requests/s (default 100)")
    parser.add_argument("--tool-share", type=float, default=0.95,
                        help="the tool's rate limits as a share of the sandbox's (default 0.95)")
    parser.add_argument("--workers", type=int, default=None,
                        help="MYCASE_SYNC_WORKERS for the main run (default: the tool's own default)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-worker run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="extra import-matters arguments (after --)")
    args = parser.parse_args()

    runs = [("tool", backfill(args, args.workers))]
    if not args.no_baseline:
        runs.append(("one worker (naive)", backfill(args, 1)))

    best = runs[0][1]
    rows = []
    for name, result in runs:
        mycase, casestatus = result["stats"]["mycase"], result["stats"]["casestatus"]
        wall = result["run"].wall
        rows.append([
            name, result["workers"],
            result["counts"]["casestatus"]["cases"],
            f"{mycase['admitted']} (+{mycase['requests'] - mycase['admitted']} other)",
            casestatus["admitted"], mycase["throttled"] + casestatus["throttled"],
            harness.seconds(wall), harness.seconds(result["floor"]), f"{wall / result['floor']:.2f}",
            f"{wall / best['run'].wall:.1f}x" if result is not best else "-",
            f"exit {result['run'].code}",
        ])
    ratio = best["run"].wall / best["floor"]
    notes = [
        f"floor = max(MyCase API requests / {args.mycase_limit:g}, Case Status API requests / "
        f"{args.casestatus_limit:g}), requests counted at the sandbox; 'other' = OAuth and S3, not rate limited",
        f"latency {args.latency_ms:g} ms MyCase, "
        f"{args.latency_ms if args.casestatus_latency_ms is None else args.casestatus_latency_ms:g} ms Case Status; "
        f"sandbox limits {args.mycase_limit:g}/s and {args.casestatus_limit:g}/s (429 past them)",
        harness.settings_note(best["settings"]),
        f"requests seen by the services from first to last: {harness.seconds(best['span'])} of the "
        f"{harness.seconds(best['run'].wall)} wall (the rest is start-up and finishing)",
        f"target wall / floor <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'} ({ratio:.2f})",
    ]
    if len(runs) > 1:
        notes.append(f"speed-up over one worker: {runs[1][1]['run'].wall / best['run'].wall:.1f}x")
    harness.print_table(f"Backfill of {args.matters} matters (first import-matters)",
                        ["run", "workers", "matters in Case Status", "MyCase requests", "Case Status requests",
                         "429s", "wall", "floor", "wall / floor", "slower by", "outcome"], rows, notes)


if __name__ == "__main__":
    main()
