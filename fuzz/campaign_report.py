#!/usr/bin/env python3
"""One row per campaign log of `scripts/fuzz --campaign` (libFuzzer's fork mode): how long the
target ran, how many inputs it executed, its coverage at the start, half way, three quarters and
the end, what its last quarter still added (share of the end coverage, and new edges per hour),
when it last found a new edge, and how many crashes, timeouts and out-of-memory inputs the run met
(their inputs are in the artifacts directory).

  python3 fuzz/campaign_report.py build-fuzz/campaign/fuzz_*.log        # a markdown table
  python3 fuzz/campaign_report.py --json LOG...                        # one JSON object per log
  python3 fuzz/campaign_report.py --check LOG...   # the table; exit 1 if any run met a finding
  python3 fuzz/campaign_report.py --totals LOG...  # one row per target over all its logs

A target has plateaued when its last new edge came early in a long run: "last new edge" far
before "minutes", and the same coverage at three quarters as at the end. A format with a grammar
(templates, JSON, YAML) rarely gets there: it keeps finding an edge now and then, and the last
quarter's rate (edges per hour, falling from run to run) is the measure of how close it is.
"""
import argparse
import json
import os
import re
import sys

STATUS = re.compile(r"#(\d+): cov: (\d+) ft: (\d+) corp: (\d+) exec/s (\d+) "
                    r"oom/timeout/crash: (\d+)/(\d+)/(\d+) time: (\d+)s")


def parse(path):
    """The fork mode's status lines of one log -> a summary dict (None: no status line)."""
    points = []  # (seconds, executions, coverage, oom, timeouts, crashes)
    with open(path, "rb") as f:
        for raw in f:
            # NEW_FUNC lines run into the next status line without a newline: search anywhere.
            for m in STATUS.finditer(raw.decode("utf-8", "replace")):
                points.append((int(m.group(9)), int(m.group(1)), int(m.group(2)),
                               int(m.group(6)), int(m.group(7)), int(m.group(8))))
    if not points:
        return None
    end_s = points[-1][0]

    def cov_at(fraction):
        at = fraction * end_s
        cov = points[0][2]
        for s, _, c, *_ in points:
            if s > at:
                break
            cov = c
        return cov

    last_new = 0
    for (s, _, c, *_), (_, _, prev, *_) in zip(points[1:], points):
        if c > prev:
            last_new = s
    name = os.path.basename(path)
    name = re.sub(r"\.log$", "", re.sub(r"^c\d+_", "fuzz_", name))
    end, three_quarters = points[-1][2], cov_at(0.75)
    quarter_h = end_s / 4 / 3600
    return {"target": name, "seconds": end_s, "executions": points[-1][1],
            "coverage_start": points[0][2], "coverage_half": cov_at(0.5),
            "coverage_three_quarters": three_quarters, "coverage_end": end,
            "last_quarter_growth": (end - three_quarters) / end if end else 0.0,
            "last_quarter_edges_per_hour": (end - three_quarters) / quarter_h if quarter_h else 0.0,
            "last_new_edge_s": last_new, "oom": points[-1][3], "timeouts": points[-1][4],
            "crashes": points[-1][5]}


def totals(rows):
    """One summary per target, in order of first appearance, over all its runs."""
    out = {}
    for r in rows:
        t = out.setdefault(r["target"], {"target": r["target"], "runs": 0, "seconds": 0,
                                         "executions": 0, "coverage_end_max": 0, "oom": 0,
                                         "timeouts": 0, "crashes": 0})
        t["runs"] += 1
        for k in ("seconds", "executions", "oom", "timeouts", "crashes"):
            t[k] += r[k]
        t["coverage_end_max"] = max(t["coverage_end_max"], r["coverage_end"])
        # The latest run's last quarter: how fast the target still grows after all the runs.
        t["last_run_last_quarter_growth"] = r["last_quarter_growth"]
        t["last_run_last_quarter_edges_per_hour"] = r["last_quarter_edges_per_hour"]
    return list(out.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when a log counts a crash, timeout or out-of-memory input")
    ap.add_argument("--totals", action="store_true",
                    help="one row per target: its runs, time, executions and findings added up, "
                    "the highest coverage, and the last quarter of its last run (logs in order)")
    ap.add_argument("logs", nargs="+")
    args = ap.parse_args()
    rows = [r for r in (parse(p) for p in args.logs) if r]
    if not rows:
        sys.exit("campaign_report: no fork-mode status line in " + " ".join(args.logs))
    found = any(r["crashes"] or r["timeouts"] or r["oom"] for r in rows)
    if args.totals:
        rows = totals(rows)
    if args.json:
        for r in rows:
            print(json.dumps(r))
        sys.exit(1 if args.check and found else 0)
    if args.totals:
        print("| target | runs | hours | executions | highest coverage "
              "| last run's last quarter | crash / timeout / oom |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['target']} | {r['runs']} | {r['seconds'] / 3600:.2f} | "
                  f"{r['executions']:,} | {r['coverage_end_max']:,} | "
                  f"+{100 * r['last_run_last_quarter_growth']:.2f} % "
                  f"({r['last_run_last_quarter_edges_per_hour']:,.0f} edges/h) | "
                  f"{r['crashes']} / {r['timeouts']} / {r['oom']} |")
        sys.exit(1 if args.check and found else 0)
    print("| target | minutes | executions | coverage start -> end | at half / three quarters "
          "| last quarter adds | last new edge at | crash / timeout / oom |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {r['seconds'] / 60:.1f} | {r['executions']:,} | "
              f"{r['coverage_start']:,} -> {r['coverage_end']:,} | {r['coverage_half']:,} / "
              f"{r['coverage_three_quarters']:,} | +{100 * r['last_quarter_growth']:.2f} % "
              f"({r['last_quarter_edges_per_hour']:,.0f}/h) | "
              f"{r['last_new_edge_s'] / 60:.1f} min | "
              f"{r['crashes']} / {r['timeouts']} / {r['oom']} |")
    sys.exit(1 if args.check and found else 0)


if __name__ == "__main__":
    main()
