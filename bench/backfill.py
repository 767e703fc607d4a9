"""The first import (10-year backfill) against rate limits the tool is not told.

A fresh firm of N matters for each Case Status limit (5, 20, 100 and 300 requests/s by default;
MyCase 25/s); both services answer after a fixed latency and refuse past their limit (429 with
Retry-After: 1 from Case Status, no Retry-After from MyCase), as the sandbox enforces them. The tool
runs with its default settings: no rate variable, so it finds each pace itself (mycase_sync/pacing.py).
The floor of a run is max(MyCase requests / MyCase limit, Case Status requests / Case Status limit),
with the requests counted at the sandbox: no client can finish sooner without making fewer requests.
One limit is also run with one worker: the naive baseline (one request per round trip).

Then `--together`: the import and both pushes started at the same moment against one account, to
see that the three jobs keep to the account's limits between them.

Target (issue #18): wall / floor <= 1.3 at every limit, 429s <= 3% of the requests.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import harness

TARGET, THROTTLED_SHARE = 1.3, 0.03
SETTINGS = {"MYCASE_SYNC_TIMEOUT": "60"}  # no rate variable: the tool finds the pace


def backfill(args, limit: float, workers: int | None, known: dict | None = None) -> dict:
    latency = (args.latency_ms / 1000,) * 2 if args.latency_ms else None
    settings = dict(SETTINGS, **({"MYCASE_SYNC_WORKERS": str(workers)} if workers else {}))
    with harness.SandboxProcess(matters=args.matters, seed=args.seed, mycase_latency=latency,
                                casestatus_latency=latency, mycase_rate_limit=args.mycase_limit,
                                casestatus_rate_limit=limit) as sandbox, \
            harness.workdir("backfill") as tmp:
        tool = harness.connected_tool(sandbox, Path(tmp), settings)
        if known:
            harness.remember_pace(tool.db_path, known)
        run = tool.run("import-matters", *args.extra).check("import-matters", allowed=(0, 1))
        stats = sandbox.call("stats")
        counts = sandbox.call("counts")
        pace = harness.stored_pace(tool.db_path)
    mycase, casestatus = stats["mycase"], stats["casestatus"]
    floor = max(mycase["admitted"] / args.mycase_limit, casestatus["admitted"] / limit)
    start = (known or {}).get("Case Status", {}).get("rate")
    return {"run": run, "stats": stats, "counts": counts, "floor": floor, "settings": settings, "pace": pace,
            "workers": str(workers) if workers else "default",
            "start": f"{start:.3g}/s (known)" if start else "10/s",
            "span": max(s["last_at"] or 0 for s in (mycase, casestatus))
            - min(s["first_at"] or math.inf for s in (mycase, casestatus))}


def row(limit: float, result: dict) -> list:
    mycase, casestatus = result["stats"]["mycase"], result["stats"]["casestatus"]
    throttled = mycase["throttled"] + casestatus["throttled"]
    sent = mycase["requests"] + casestatus["requests"]
    wall = result["run"].wall
    found = result["pace"].get("Case Status", {}).get("rate")
    return [f"{limit:g}/s", result["workers"], result["start"], result["counts"]["casestatus"]["cases"],
            f"{mycase['admitted']} + {casestatus['admitted']}", f"{throttled} ({throttled / sent:.1%})",
            f"{found:.3g}/s" if found else "-", harness.seconds(wall), harness.seconds(result["floor"]),
            f"{wall / result['floor']:.2f}", f"exit {result['run'].code}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matters", type=int, default=3000, help="cases in the firm (default 3000)")
    parser.add_argument("--latency-ms", type=float, default=100, help="latency of both services (default 100)")
    parser.add_argument("--mycase-limit", type=float, default=25, help="MyCase requests/s (default 25)")
    parser.add_argument("--limits", default="5,20,100,300", help="Case Status requests/s, one run each")
    parser.add_argument("--baseline", type=float, default=100, help="the limit also run with one worker (default 100)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-worker run")
    parser.add_argument("--no-known", dest="known", action="store_false",
                        help="skip the run at the highest limit with the pace already known")
    parser.add_argument("--together-limit", type=float, default=20,
                        help="Case Status requests/s of the three-jobs-at-once run (default 20)")
    parser.add_argument("--together-matters", type=int, default=600, help="its firm's size (default 600)")
    parser.add_argument("--only", choices=("backfill", "together"), help="print only one of the two tables")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="extra import-matters arguments (after --)")
    args = parser.parse_args()
    if args.only != "together":
        backfills(args)
    if args.only != "backfill":
        together(args)


def backfills(args) -> None:
    limits = [float(v) for v in args.limits.split(",") if v.strip()]
    rows, ratios, shares, firsts = [], [], [], {}
    for limit in limits:
        result = backfill(args, limit, None)
        rows.append(row(limit, result))
        ratios.append(result["run"].wall / result["floor"])
        stats = result["stats"]
        shares.append((stats["mycase"]["throttled"] + stats["casestatus"]["throttled"])
                      / (stats["mycase"]["requests"] + stats["casestatus"]["requests"]))
        last = firsts[limit] = result
    top = max(limits)
    if args.known:  # the same backfill, with the pace an earlier run found already in the store
        rows.append(row(top, backfill(args, top, None, known=firsts[top]["pace"])))
    baseline = None
    if not args.no_baseline:
        baseline = backfill(args, args.baseline, 1)
        rows.append(row(args.baseline, baseline))
    notes = [
        "workers 'default': MYCASE_SYNC_WORKERS unset (64 with the default ceilings); requests: MyCase + Case "
        "Status API requests the services admitted; 429s: refused, as a share of all requests sent",
        "pace at start: the Case Status pace the run began with (10/s when none is known, as on a first run; "
        "'known': the pace the first run at that limit stored); pace found: the one it stored at its end",
        f"floor = max(MyCase requests / {args.mycase_limit:g}, Case Status requests / limit), counted at the sandbox",
        f"latency {args.latency_ms:g} ms on both services; sandbox MyCase limit {args.mycase_limit:g}/s",
        harness.settings_note(last["settings"]) + " (no rate variable: the tool finds the pace)",
        f"targets wall / floor <= {TARGET} and 429s <= {THROTTLED_SHARE:.0%}, over the runs with no pace known: "
        f"{'met' if max(ratios) <= TARGET and max(shares) <= THROTTLED_SHARE else 'NOT met'} "
        f"(worst {max(ratios):.2f} and {max(shares):.1%})",
    ]
    if baseline is not None:
        same = next(r for limit, r in zip(limits, ratios) if limit == args.baseline) if args.baseline in limits else None
        if same is not None:
            tool_wall = same * baseline["floor"]
            notes.append(f"one worker at {args.baseline:g}/s is {baseline['run'].wall / tool_wall:.1f}x slower")
    harness.print_table(f"Backfill of {args.matters} matters (first import-matters), rate limits not told",
                        ["Case Status limit", "workers", "pace at start", "matters in Case Status", "requests", "429s",
                         "pace found", "wall", "floor", "wall / floor", "outcome"], rows, notes)


JOBS = ("import-matters", "push-messages", "push-documents")


def together(args) -> None:
    """The import and both pushes at the same moment, against one account, with work for each."""
    import threading

    limits = {"mycase": args.mycase_limit, "casestatus": args.together_limit}
    with harness.SandboxProcess(matters=args.together_matters, seed=args.seed, mycase_rate_limit=None,
                                casestatus_rate_limit=None) as sandbox, harness.workdir("together") as tmp:
        tool = harness.connected_tool(sandbox, Path(tmp), SETTINGS)
        for job in JOBS:  # set-up, unmeasured and unlimited: everything imported, the backlog pushed
            tool.run(job).check(f"set-up {job}", allowed=(0, 1))
        imported = [str(c) for c in harness.imported_ids(tool.db_path)]
        sandbox.call("add_messages", imported[:args.together_matters // 2], "a new message from the client")
        for case in imported[:args.together_matters // 6]:
            sandbox.call("add_file", case, "scan.pdf", 20_000)
        sandbox.call("touch_cases", args.together_matters // 3, 7)
        harness.forget_pace(tool.db_path)  # as on the first night: no pace known
        for service, limit in limits.items():
            sandbox.call("set", service, "rate_limit", limit)
            sandbox.call("set", service, "latency", (args.latency_ms / 1000,) * 2 if args.latency_ms else None)
        sandbox.call("reset")
        runs: dict = {}
        threads = [threading.Thread(target=lambda job=job: runs.__setitem__(job, tool.run(job))) for job in JOBS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = sandbox.call("stats")
        timeline = sandbox.call("timeline")
        pace = harness.stored_pace(tool.db_path)
    for job in JOBS:
        runs[job].check(job, allowed=(0, 1))
    rows, floors = [], []
    for service, name in (("mycase", "MyCase"), ("casestatus", "Case Status")):
        arrivals = [(at, limited) for at, svc, _, path, _, limited in timeline
                    if svc == service and is_api(service, path)]
        busiest, refused = harness.busiest_second(arrivals)
        admitted, throttled = stats[service]["admitted"], stats[service]["throttled"]
        floors.append(admitted / limits[service])
        found = pace.get(name, {}).get("rate")
        rows.append([name, f"{limits[service]:g}/s", admitted, f"{throttled} ({throttled / max(1, admitted + throttled):.1%})",
                     f"{busiest} ({refused} refused)", f"{found:.3g}/s" if found else "-"])
    wall = max(run.wall for run in runs.values())
    harness.print_table(
        f"Three jobs started at once against one account ({args.together_matters}-matter firm)",
        ["service", "sandbox limit", "requests admitted", "429s", "busiest second: sent (429s in it)", "pace found"],
        rows,
        [f"work: {args.together_matters // 3} changed matters to import, {args.together_matters // 2} new messages, "
         f"{args.together_matters // 6} new documents; no pace known at the start (as on a first night)",
         "busiest second: the most API requests that reached the service within any one second, refused ones included",
         "walls: " + ", ".join(f"{job} {harness.seconds(runs[job].wall)}" for job in JOBS) +
         f"; floor of the three together {harness.seconds(max(floors))}, longest wall / floor {wall / max(floors):.2f}",
         f"latency {args.latency_ms:g} ms on both services",
         harness.settings_note(SETTINGS) + " (no rate variable)"])


def is_api(service: str, path: str) -> bool:
    """Requests the service counts against its limit (not OAuth, not the file hosts)."""
    return path.startswith("/v1/api/") if service == "casestatus" else path.startswith("/v1/")


if __name__ == "__main__":
    main()
