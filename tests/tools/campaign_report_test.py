#!/usr/bin/env python3
"""fuzz/campaign_report.py on made-up fork-mode logs: the figures of its table (the last quarter's
growth among them), the status line that runs on after a NEW_FUNC line without a newline,
--totals over several runs of a target, and --check's exit status on findings."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

REPORT = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "..", "fuzz", "campaign_report.py")


def status(execs, cov, seconds, oom=0, timeouts=0, crashes=0):
    return (f"#{execs}: cov: {cov} ft: {cov - 10} corp: 50 exec/s 100 "
            f"oom/timeout/crash: {oom}/{timeouts}/{crashes} time: {seconds}s job: 1 dft_time: 0")


class CampaignReport(unittest.TestCase):
    def run_report(self, lines, *flags, logs=None):
        """Runs the report on one log of `lines`, or on several ({file name: lines}, in order)."""
        logs = logs or {"c5_tokenizer.log": lines}
        with tempfile.TemporaryDirectory() as d:
            paths = []
            for name, content in logs.items():
                paths.append(os.path.join(d, name))
                with open(paths[-1], "w") as f:
                    f.write("\n".join(content) + "\n")
            return subprocess.run([sys.executable, REPORT, *flags, *paths], capture_output=True,
                                  text=True)

    def test_figures(self):
        lines = ["INFO: -fork=1: fuzzing in separate process(s)",
                 status(100, 1000, 10), status(5000, 1100, 100),
                 "  NEW_FUNC[1/1]: 0x55 in foo() /src/foo.cpp:1" + status(9000, 1150, 200),
                 status(20000, 1150, 300), status(40000, 1150, 400),
                 "INFO: exiting: 0 time: 401s"]
        r = self.run_report(lines, "--json", "--check")
        self.assertEqual(r.returncode, 0, r.stderr)
        row = json.loads(r.stdout)
        self.assertEqual(row["target"], "fuzz_tokenizer")
        self.assertEqual(row["seconds"], 400)
        self.assertEqual(row["executions"], 40000)
        self.assertEqual((row["coverage_start"], row["coverage_half"],
                          row["coverage_three_quarters"], row["coverage_end"]),
                         (1000, 1150, 1150, 1150))
        self.assertEqual(row["last_new_edge_s"], 200)
        self.assertEqual(row["last_quarter_growth"], 0.0)
        table = self.run_report(lines)
        self.assertIn("| fuzz_tokenizer | 6.7 | 40,000 | 1,000 -> 1,150 | 1,150 / 1,150 | "
                      "+0.00 % (0/h) | 3.3 min | 0 / 0 / 0 |", table.stdout)

    def test_last_quarter_still_growing(self):
        # An hour's run: 1,980 edges at three quarters (45 min), 2,000 at the end: 20 edges in a
        # quarter of an hour is 1 % of the end value and 80 edges per hour.
        lines = [status(10, 1000, 60), status(500, 1900, 1800), status(900, 1980, 2700),
                 status(1000, 1990, 3000), status(1200, 2000, 3600)]
        row = json.loads(self.run_report(lines, "--json").stdout)
        self.assertAlmostEqual(row["last_quarter_growth"], 0.01)
        self.assertAlmostEqual(row["last_quarter_edges_per_hour"], 80.0)
        self.assertIn("| +1.00 % (80/h) | 60.0 min |", self.run_report(lines).stdout)

    def test_totals_add_up_runs_of_a_target(self):
        logs = {"c4_media.log": [status(10, 500, 10), status(100, 600, 600)],
                "c4_wav.log": [status(10, 50, 10), status(300, 60, 1200, oom=1)],
                "c5_media.log": [status(10, 590, 10), status(50, 640, 1200),
                                 status(80, 650, 2400)]}
        r = self.run_report(None, "--totals", "--json", logs=logs)
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual([x["target"] for x in rows], ["fuzz_media", "fuzz_wav"])
        media = rows[0]
        self.assertEqual((media["runs"], media["seconds"], media["executions"],
                          media["coverage_end_max"]), (2, 3000, 180, 650))
        # The last run's last quarter (1800-2400 s) added 10 of 650 edges, 60 per hour.
        self.assertAlmostEqual(media["last_run_last_quarter_edges_per_hour"], 60.0)
        self.assertEqual(rows[1]["oom"], 1)
        table = self.run_report(None, "--totals", "--check", logs=logs)
        self.assertEqual(table.returncode, 1)
        self.assertIn("| fuzz_media | 2 | 0.83 | 180 | 650 | +1.54 % (60 edges/h) | 0 / 0 / 0 |",
                      table.stdout)

    def test_findings_fail_check(self):
        lines = [status(100, 1000, 10), status(900, 1001, 60, oom=1)]
        self.assertEqual(self.run_report(lines).returncode, 0)
        r = self.run_report(lines, "--check")
        self.assertEqual(r.returncode, 1)
        self.assertIn("0 / 0 / 1", r.stdout)

    def test_log_without_status_lines_is_an_error(self):
        r = self.run_report(["INFO: nothing ran"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no fork-mode status line", r.stderr)


if __name__ == "__main__":
    unittest.main()
