#!/usr/bin/env python3
"""fuzz/campaign_report.py on a made-up fork-mode log: the figures of its table, the status line
that runs on after a NEW_FUNC line without a newline, and --check's exit status on findings."""
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
    def run_report(self, lines, *flags):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c5_tokenizer.log")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            return subprocess.run([sys.executable, REPORT, *flags, path], capture_output=True,
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
        table = self.run_report(lines)
        self.assertIn("| fuzz_tokenizer | 6.7 | 40,000 | 1,000 -> 1,150 | 1,150 / 1,150 | "
                      "3.3 min | 0 / 0 / 0 |", table.stdout)

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
