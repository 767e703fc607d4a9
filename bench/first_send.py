"""What the first-send lookup costs: before an item is sent the first time, its matter's MyCase
notes (or documents) are read once for its marker, so that a fresh, lost or restored state store
adopts what is already there instead of sending it twice.

Set-up (not measured): a firm of N matters is imported, and its backlog of messages and documents
pushed. Then, for each K: one new message (or file) on each of K matters, and one run of
push-messages (or push-documents). Last, a second, fresh state store is pointed at the same firm
and runs both pushes: everything is adopted, nothing written. Requests are counted at the sandbox.

Expected (issue #14): an idle run stays at 1 Case Status request and 0 MyCase requests; new items
on K matters cost at most K list reads (plus paging) beyond the K writes.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import harness

SETTINGS = {"MYCASE_SYNC_TIMEOUT": "30"}  # no rate variable: the tool finds the pace
NOTES, DOCUMENTS = r"/v1/cases/\d+/notes", r"/v1/cases/\d+/documents"


def measured(sandbox, tool, job: str) -> list:
    sandbox.call("reset")
    tool.run(job).check(job)
    stats = sandbox.call("stats")
    lists = sandbox.call("count", "mycase", "GET", NOTES if job == "push-messages" else DOCUMENTS)
    data = sandbox.call("count", "mycase", "GET", r"/v1/documents/\d+/data")
    return [stats["casestatus"]["requests"], stats["mycase"]["requests"], lists, data, stats["mycase"]["writes"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matters", type=int, default=300, help="cases in the firm (default 300)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 10, 50], help="matters with new items (default 1 10 50)")
    args = parser.parse_args()

    with harness.SandboxProcess(matters=args.matters, seed=8, mycase_rate_limit=25,
                                casestatus_rate_limit=100) as sandbox, harness.workdir("first-send") as tmp:
        tool = harness.connected_tool(sandbox, Path(tmp) / "a", SETTINGS)
        tool.run("import-matters").check("import-matters", allowed=(0, 1))
        for job in ("push-messages", "push-documents"):
            tool.run(job).check(f"first {job}")
        imported = harness.imported_ids(tool.db_path)
        rows = []
        for job in ("push-messages", "push-documents"):
            rows.append([job, "idle (nothing new)", *measured(sandbox, tool, job)])
        for k in args.k:
            cases = imported[:k]
            sandbox.call("add_messages", cases, f"bench: one new message on each of {k} matters")
            rows.append(["push-messages", f"new items on K={k} matters", *measured(sandbox, tool, "push-messages")])
            for n, case in enumerate(cases):
                sandbox.call("add_file", case, f"bench-{k}-{n}.pdf", 2048)
            rows.append(["push-documents", f"new items on K={k} matters", *measured(sandbox, tool, "push-documents")])
        fresh = harness.connected_tool(sandbox, Path(tmp) / "b", SETTINGS)
        fresh.run("import-matters").check("fresh store: import-matters", allowed=(0, 1))
        counts = sandbox.call("counts")["mycase"]
        for job in ("push-messages", "push-documents"):
            rows.append([job, f"a fresh store on the same firm ({len(imported)} matters imported)",
                         *measured(sandbox, fresh, job)])
        after = sandbox.call("counts")["mycase"]
        harness.print_table(
            f"The first-send lookup ({args.matters}-matter firm)",
            ["job", "run", "Case Status requests", "MyCase requests", "MyCase list reads", "MyCase data reads",
             "MyCase writes"], rows,
            ["list reads: GET of a matter's notes or documents (all pages); data reads: a document's bytes,"
             " hashed to check a document found by its marker is complete",
             f"fresh store: MyCase held {counts['notes']} notes and {counts['documents']} documents before its"
             f" pushes and {after['notes']} and {after['documents']} after",
             harness.settings_note(SETTINGS)])


if __name__ == "__main__":
    main()
