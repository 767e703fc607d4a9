"""The nightly run on a big firm that is already imported: only what changed is written.

Set-up (not measured): a firm of N matters is imported in full with no latency. Then C random
matters change in MyCase (their description, so updated_at moves to now) and the services get
their latency and rate limits; the next plain `import-matters` is the measured nightly run.

Expected (issue #8): the MyCase pages holding the last 30 days of changes, one staff listing,
exactly C Case Status writes.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import harness

SETUP = {"MYCASE_RATE_LIMIT": f"{harness.tool_rate(25):g}", "CASESTATUS_RATE_LIMIT": "100000",
         "MYCASE_SYNC_TIMEOUT": "120"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matters", type=int, default=100_000, help="cases in the firm (default 100000)")
    parser.add_argument("--changed", type=int, default=300, help="matters changed since the last run (default 300)")
    parser.add_argument("--latency-ms", type=float, default=100, help="latency of both services in the nightly run")
    parser.add_argument("--mycase-limit", type=float, default=25)
    parser.add_argument("--casestatus-limit", type=float, default=100)
    args = parser.parse_args()
    nightly = {"MYCASE_RATE_LIMIT": f"{harness.tool_rate(args.mycase_limit):g}",
               "CASESTATUS_RATE_LIMIT": f"{harness.tool_rate(args.casestatus_limit):g}",
               "MYCASE_SYNC_TIMEOUT": "60"}

    with harness.SandboxProcess(matters=args.matters, seed=5, mycase_rate_limit=25, casestatus_rate_limit=None,
                                with_activity=False) as sandbox, harness.workdir("incremental") as tmp:
        tool = harness.connected_tool(sandbox, Path(tmp), SETUP)
        setup = tool.run("import-matters").check("set-up import-matters", allowed=(0, 1))
        imported = sandbox.call("counts")["casestatus"]["cases"]
        # A quiet night first: what does a run cost when nothing changed?
        tool.settings = nightly
        tool.env.update(nightly)
        for service, limit in (("mycase", args.mycase_limit), ("casestatus", args.casestatus_limit)):
            sandbox.call("set", service, "rate_limit", limit)
            if args.latency_ms:
                sandbox.call("set", service, "latency", (args.latency_ms / 1000,) * 2)
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
        return [name, f"{pages} case pages + {staff} staff" + (f" + {other} other" if other else ""),
                f"{casestatus['admitted']} ({casestatus['writes']} writes)",
                mycase["throttled"] + casestatus["throttled"], harness.seconds(result.wall),
                f"{result.peak_rss_mb:.0f} MB", f"exit {result.code}"]

    rows = [row("nothing changed", quiet, quiet_stats), row(f"{args.changed} matters changed", run, stats)]
    writes = stats["casestatus"]["writes"]
    def by_route(service):
        return ", ".join(f"{k} x{v}" for k, v in sorted(stats[service]["by_route"].items()))

    harness.print_table(
        f"Nightly import-matters on a {args.matters:,}-matter firm already imported",
        ["run", "MyCase requests", "Case Status requests", "429s", "wall", "peak RSS", "outcome"], rows,
        [f"set-up: full import of {imported:,} matters in {harness.seconds(setup.wall)} (no latency), not measured",
         f"expected: the case pages of the last 30 days, one staff listing, exactly {args.changed} Case Status "
         f"writes: {'met' if writes == args.changed else 'NOT met'} ({writes} writes)",
         f"by route, {args.changed} changed: MyCase {by_route('mycase')}; Case Status {by_route('casestatus')}",
         "MyCase 'other': matters that failed earlier (malformed in MyCase) are read again by id on every run",
         f"nightly runs: latency {args.latency_ms:g} ms on both services, sandbox limits "
         f"{args.mycase_limit:g}/s and {args.casestatus_limit:g}/s",
         harness.settings_note(nightly)])


if __name__ == "__main__":
    main()
