#!/usr/bin/env python3
"""Summarizes a client.py request log (JSON lines).

  summarize.py FILE.jsonl [--from T] [--to T] [--after T] [--rate R] [--json]

T values are epoch seconds (as in the log's "sent"). --from/--to keep the requests sent in
[from, to). Prints a short report, or with --json one JSON object:

  {"sent": 500, "ok": 480, "failed": 20, "failed_pct": 4.0, "rate": 50.0,
   "first_sent": ..., "last_sent": ...,
   "longest_failure_s": 0.4, "longest_failure_count": 20, "longest_failure_start": ...,
   "failure_runs": [{"start": ..., "end": ..., "seconds": 0.4, "count": 20,
                     "errors": {"reset": 20}}],
   "failures_by_error": {"reset": 20},
   "by_node": {"n1": 300, "n2": 180}, "by_container": {"web-1": 400, "web-2": 80},
   "nodes": {"n1": {"first": ..., "last": ...}, "n2": {"first": ..., "last": ...}},
   "last_node": "n2",
   "after": {"t": T, "sent": 100, "ok": 100, "failed": 0, "by_node": {"n2": 100},
             "by_container": {...}, "failures_by_error": {}}}     (only with --after)

A failure run is a stretch of consecutive failed requests in send order; it lasts from the
first failed request's sent time to the next successful request's sent time, or, when none
follows, to the last failed request's sent time + 1/rate. rate is --rate, else estimated from
the log. Importable: load(path), summarize(records, ...), summarize_file(path, ...),
format_text(summary).
"""

import argparse
import collections
import json
import sys


def load(path):
    """The request records of a client.py log, sorted by send time (a torn last line, from a
    client still writing, is skipped)."""
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    records.sort(key=lambda r: (r["sent"], r["seq"]))
    return records


def estimate_rate(records):
    if len(records) < 2:
        return None
    span = records[-1]["sent"] - records[0]["sent"]
    return (len(records) - 1) / span if span > 0 else None


def counts(records):
    ok = [r for r in records if r["ok"]]
    return {"sent": len(records), "ok": len(ok), "failed": len(records) - len(ok),
            "by_node": dict(collections.Counter(r["node"] for r in ok)),
            "by_container": dict(collections.Counter(r["container"] for r in ok)),
            "failures_by_error": dict(collections.Counter(r["error"] for r in records
                                                          if not r["ok"]))}


def failure_runs(records, rate):
    runs = []
    run = []
    for r in records:
        if not r["ok"]:
            run.append(r)
            continue
        if run:
            runs.append((run, r["sent"]))
            run = []
    if run:
        runs.append((run, run[-1]["sent"] + (1.0 / rate if rate else 0.0)))
    return [{"start": run[0]["sent"], "end": end, "seconds": round(end - run[0]["sent"], 6),
             "count": len(run),
             "errors": dict(collections.Counter(r["error"] for r in run))}
            for run, end in runs]


def summarize(records, t_from=None, t_to=None, after=None, rate=None):
    """A dict as described in the module docstring. records: as load() returns them."""
    records = [r for r in records
               if (t_from is None or r["sent"] >= t_from) and (t_to is None or r["sent"] < t_to)]
    records.sort(key=lambda r: (r["sent"], r["seq"]))
    rate = rate or estimate_rate(records)
    out = counts(records)
    out["failed_pct"] = round(100.0 * out["failed"] / out["sent"], 3) if out["sent"] else 0.0
    out["rate"] = round(rate, 3) if rate else None
    out["first_sent"] = records[0]["sent"] if records else None
    out["last_sent"] = records[-1]["sent"] if records else None
    runs = failure_runs(records, rate)
    longest = max(runs, key=lambda run: run["seconds"]) if runs else None
    out["longest_failure_s"] = longest["seconds"] if longest else 0.0
    out["longest_failure_count"] = longest["count"] if longest else 0
    out["longest_failure_start"] = longest["start"] if longest else None
    out["failure_runs"] = runs
    nodes = {}
    for r in records:
        if r["ok"]:
            seen = nodes.setdefault(r["node"], {"first": r["sent"], "last": r["sent"]})
            seen["last"] = r["sent"]
    out["nodes"] = nodes
    answered = [r for r in records if r["ok"]]
    out["last_node"] = answered[-1]["node"] if answered else None
    if after is not None:
        out["after"] = dict(counts([r for r in records if r["sent"] >= after]), t=after)
    return out


def summarize_file(path, t_from=None, t_to=None, after=None, rate=None):
    return summarize(load(path), t_from, t_to, after, rate)


def format_text(s):
    lines = ["sent %d, ok %d, failed %d (%.2f %%)" % (s["sent"], s["ok"], s["failed"],
                                                     s["failed_pct"]),
             "longest failure run: %.3f s (%d requests)" % (s["longest_failure_s"],
                                                            s["longest_failure_count"]),
             "failure runs: %d" % len(s["failure_runs"])]
    if s["failures_by_error"]:
        lines.append("failures: " + ", ".join("%s %d" % kv for kv in
                                              sorted(s["failures_by_error"].items())))
    for node, seen in sorted(s["nodes"].items(), key=lambda kv: kv[1]["first"]):
        lines.append("node %s: %d answers, first %.3f, last %.3f"
                     % (node, s["by_node"][node], seen["first"], seen["last"]))
    if s["by_container"]:
        lines.append("containers: " + ", ".join("%s %d" % kv for kv in
                                                sorted(s["by_container"].items())))
    if "after" in s:
        a = s["after"]
        lines.append("after %.3f: sent %d, ok %d, failed %d, answered by %s"
                     % (a["t"], a["sent"], a["ok"], a["failed"],
                        ", ".join("%s %d" % kv for kv in sorted(a["by_node"].items()))
                        or "nobody"))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description="Summarize a client.py request log.")
    parser.add_argument("file", help="JSON lines written by client.py --out")
    parser.add_argument("--from", dest="t_from", type=float, help="keep requests sent >= T")
    parser.add_argument("--to", dest="t_to", type=float, help="keep requests sent < T")
    parser.add_argument("--after", type=float, help="also count answers for requests sent >= T")
    parser.add_argument("--rate", type=float, help="the client's rate (default: estimated)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    summary = summarize_file(args.file, args.t_from, args.t_to, args.after, args.rate)
    if args.json:
        json.dump(summary, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(format_text(summary))


if __name__ == "__main__":
    main()
