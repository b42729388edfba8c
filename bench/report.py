#!/usr/bin/python3
"""Turns the raw outputs of scripts/bench into bench/results.json and regenerates the generated
tables of docs/PERFORMANCE.md (between <!-- bench:NAME:begin --> and <!-- bench:NAME:end -->).

  bench/report.py --raw DIR --out bench/results.json --docs docs/PERFORMANCE.md
  bench/report.py --docs docs/PERFORMANCE.md --from bench/results.json   # tables only

results.json is a JSON array, one entry per metric: {name, value, unit, command, machine{cores,
cpu_model, libtorch_version}, goal, details (supporting figures, optional)}; a metric whose
benchmark failed is left out (and reported, exit status 1)."""
import argparse
import json
import os
import re
import sys

# name -> (unit, goal text, goal test or None, docs section)
METRICS = {
    "graph_hop_us": ("us", "< 2 us", lambda v: v < 2, "Core runtime"),
    "decode_ratio_vs_ffmpeg": ("ratio", ">= 0.9", lambda v: v >= 0.9, "Media"),
    "logmel_30s_ms": ("ms", "< 30 ms", lambda v: v < 30, "Front ends"),
    "logmel_ratio_vs_torch_stft": ("ratio", ">= 1 (faster)", lambda v: v >= 1, "Front ends"),
    "fusion_gflops_fraction_of_peak": ("fraction", ">= 0.5", lambda v: v >= 0.5, "Fusion"),
    "e2e_clips_per_s": ("clips/s", "-", None, "Whole pipeline"),
    "e2e_ratio_vs_python": ("ratio", ">= 3", lambda v: v >= 3, "Whole pipeline"),
    "e2e_overlap_efficiency": ("fraction", ">= 0.85", lambda v: v >= 0.85, "Whole pipeline"),
    "stream_answer_latency_ms_p50": ("ms", "< 100 ms", lambda v: v < 100, "Whole pipeline"),
    "stream_answer_latency_ms_p99": ("ms", "-", None, "Whole pipeline"),
    "rss_mb_10_clips": ("MiB", "-", None, "Whole pipeline"),
    "rss_mb_100_clips": ("MiB", "within 10% of 10 clips", None, "Whole pipeline"),
}


def read(path):
    with open(path) as f:
        return f.read()


def last_json(path):
    """The last line of a file that parses as JSON."""
    for line in reversed(read(path).splitlines()):
        line = line.strip()
        if line.startswith("{") or line.startswith("["):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError(f"no JSON line in {path}")


def machine(raw):
    cpu = "unknown"
    try:
        for line in read("/proc/cpuinfo").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = "unknown"
    try:
        version = last_json(os.path.join(raw, "floor.json")).get("libtorch", version)
    except (OSError, ValueError):
        pass
    return {"cores": os.cpu_count(), "cpu_model": cpu, "libtorch_version": version}


def collect(raw, commands):
    values, notes = {}, {}

    def attempt(name, fn):
        try:
            values[name] = fn()
        except Exception as e:  # a failed benchmark leaves its metric out, loudly
            print(f"report: {name}: not measured ({e})", file=sys.stderr)

    def core():
        data = json.loads(read(os.path.join(raw, "core.json")))
        for b in data["benchmarks"]:
            if "BM_Chain" in b["name"] and "workers:1" in b["name"] and \
                    b.get("aggregate_name") == "median":
                return b["time_per_packet_hop"] * 1e6
        raise ValueError("no BM_Chain workers:1 median")
    attempt("graph_hop_us", core)

    def media():
        m = re.search(r"ratio vs decode-only ffmpeg\s*:\s*([0-9.]+)",
                      read(os.path.join(raw, "media.txt")))
        return float(m.group(1))
    attempt("decode_ratio_vs_ffmpeg", media)

    def logmel(group):
        text = read(os.path.join(raw, "frontends.txt"))
        m = re.search(r"LogMel 30 s,\s+80 mels: omnipipe ([0-9.]+) ms, torch::stft reference "
                      r"([0-9.]+) ms", text)
        paired = re.search(r"LogMel 30 s,\s+80 mels: .*paired ratio ([0-9.]+)", text)
        if group == 1:
            return float(m.group(1))
        # The median of the alternating rounds' ratios when the bench prints it.
        return float(paired.group(1)) if paired else float(m.group(2)) / float(m.group(1))
    attempt("logmel_30s_ms", lambda: logmel(1))
    attempt("logmel_ratio_vs_torch_stft", lambda: logmel(2))

    def fusion():
        rows = last_json(os.path.join(raw, "fusion.txt"))
        return max(r["fraction_of_peak"] for r in rows)
    attempt("fusion_gflops_fraction_of_peak", fusion)

    def e2e():
        cpp = json.loads(read(os.path.join(raw, "cpp_summary.json")))
        py = json.loads(read(os.path.join(raw, "py_summary.json")))
        notes["e2e"] = {"cpp": cpp, "python": py}
        return cpp["clips_per_s"], cpp["clips_per_s"] / py["clips_per_s"]
    try:
        values["e2e_clips_per_s"], values["e2e_ratio_vs_python"] = e2e()
    except Exception as e:
        print(f"report: e2e: not measured ({e})", file=sys.stderr)

    def answers_agree():
        def load(p):
            out = {}
            for line in read(p).splitlines():
                r = json.loads(line)
                out[(r.get("line"), r.get("question"))] = r.get("answer", r.get("error"))
            return out
        a = load(os.path.join(raw, "answers_cpp.jsonl"))
        b = load(os.path.join(raw, "answers_py.jsonl"))
        same = sum(1 for k in a if k in b and a[k] == b[k])
        return {"pairs": len(a), "python_pairs": len(b), "same_answers": same}
    try:
        notes["answers"] = answers_agree()
    except Exception as e:
        print(f"report: answer comparison failed ({e})", file=sys.stderr)

    try:
        notes["parity"] = last_json(os.path.join(raw, "parity.json"))
    except Exception as e:
        print(f"report: parity: not measured ({e})", file=sys.stderr)

    def floor():
        f = last_json(os.path.join(raw, "floor.json"))
        notes["floor"] = f
        return f["e2e_overlap_efficiency"]
    attempt("e2e_overlap_efficiency", floor)

    def stream(key):
        s = last_json(os.path.join(raw, "stream.json"))
        notes["stream"] = s
        return s[key]
    attempt("stream_answer_latency_ms_p50", lambda: stream("latency_ms_p50"))
    attempt("stream_answer_latency_ms_p99", lambda: stream("latency_ms_p99"))

    def rss(n):
        s = json.loads(read(os.path.join(raw, f"rss{n}.json")))
        notes[f"rss{n}"] = s
        return s["max_rss_mb"]
    attempt("rss_mb_10_clips", lambda: rss(10))
    attempt("rss_mb_100_clips", lambda: rss(100))

    # Supporting figures travel with the metric they explain.
    home = {"e2e": "e2e_ratio_vs_python", "answers": "e2e_ratio_vs_python",
            "parity": "e2e_ratio_vs_python", "floor": "e2e_overlap_efficiency",
            "stream": "stream_answer_latency_ms_p50", "rss10": "rss_mb_10_clips",
            "rss100": "rss_mb_100_clips"}
    entries = []
    m = machine(raw)
    for name, (unit, goal, _, _) in METRICS.items():
        if name in values:
            e = {"name": name, "value": round(values[name], 4), "unit": unit,
                 "command": commands.get(name, ""), "machine": m, "goal": goal}
            details = {k: v for k, v in notes.items() if home.get(k) == name}
            if details:
                e["details"] = details
            entries.append(e)
    return entries, notes


def fmt(v):
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def status(name, value, by_name):
    test = METRICS[name][2]
    if name == "rss_mb_100_clips" and "rss_mb_10_clips" in by_name:
        base = by_name["rss_mb_10_clips"]
        return "met" if value <= 1.1 * base else "not met"
    if test is None:
        return ""
    return "met" if test(value) else "not met"


def summary_table(entries):
    by_name = {e["name"]: e["value"] for e in entries}
    rows = ["| metric | goal | measured | status | section |", "|---|---|---|---|---|"]
    for name, (unit, goal, _, section) in METRICS.items():
        if name in by_name:
            v = by_name[name]
            rows.append(f"| `{name}` | {goal} | {fmt(v)} {unit} | {status(name, v, by_name)} | "
                        f"{section} |")
        else:
            rows.append(f"| `{name}` | {goal} | not measured | | {section} |")
    m = entries[0]["machine"] if entries else {}
    rows.append("")
    rows.append(f"Machine: {m.get('cores', '?')} cores, {m.get('cpu_model', '?')}, libtorch "
                f"{m.get('libtorch_version', '?')}. Generated by `scripts/bench` from "
                "`bench/results.json`.")
    return "\n".join(rows)


def commands_table(entries):
    rows = ["| metric | command |", "|---|---|"]
    for e in entries:
        rows.append(f"| `{e['name']}` | `{e['command']}` |")
    return "\n".join(rows)


def e2e_table(notes):
    rows = []
    e2e = notes.get("e2e")
    if e2e:
        c, p = e2e["cpp"], e2e["python"]
        rows += ["| run (same clips, one after the other) | clips | seconds | clips/s |",
                 "|---|---|---|---|",
                 f"| C++ `ask_clip --batch` | {c['clips']} | {c['seconds']:.2f} | "
                 f"{c['clips_per_s']:.2f} |",
                 f"| Python `bench/python/ask_batch.py` | {p['clips']} | {p['seconds']:.2f} | "
                 f"{p['clips_per_s']:.2f} |", ""]
    a = notes.get("answers")
    if a:
        rows.append(f"Same answers: {a['same_answers']} of {a['pairs']} pairs "
                    f"(Python wrote {a['python_pairs']}).")
    par = notes.get("parity")
    if par:
        rows.append(f"Logit parity on identical inputs (`--compare`): max |diff| "
                    f"{par['max_abs_logit_diff']:.2g} (tolerance {par['tolerance']:g}), "
                    f"{'passed' if par['ok'] else 'FAILED'}.")
    rows.append("")
    f = notes.get("floor")
    if f:
        rows += ["| stage alone (same clips) | seconds |", "|---|---|",
                 f"| decode (MediaReader: fps-sampled RGB + 16 kHz PCM) | {f['decode_s']:.3f} |",
                 f"| preprocess (resize/normalise + log-mel) | {f['preprocess_s']:.3f} |",
                 f"| model (encoders + transformer on precomputed inputs) | {f['model_s']:.3f} |",
                 f"| of which encoders | {f['encoders_s']:.3f} |",
                 f"| of which transformer (4 questions, shared prefix) | {f['transformer_s']:.3f} |",
                 f"| **end to end** (batch graph, {f['workers']} workers, {f['torch_threads']} "
                 f"torch thread(s)) | **{f['e2e_s']:.3f}** |",
                 "",
                 f"{f['clips']} clips; efficiency = slowest stage / end to end = "
                 f"{f['e2e_overlap_efficiency']:.2f}.", ""]
    s = notes.get("stream")
    if s:
        rows.append(f"Streaming: {s['clips']} clips at {s['speed']}x real time; answer latency "
                    f"after the clip ends p50 {s['latency_ms_p50']:.1f} ms, p99 "
                    f"{s['latency_ms_p99']:.1f} ms (max {s['latency_ms_max']:.1f})"
                    + (f" = last tokens in after {s['inputs_done_ms_p50']:.1f} ms + prompt tail, "
                       f"question and decoding {s['answer_ms_p50']:.1f} ms (p50s)"
                       if "answer_ms_p50" in s else "") + "; "
                    f"{s['mean_tail_tokens']:.0f} prompt tokens left after the clip on average; "
                    f"prefix mismatches {s['prefix_mismatches']}"
                    + (f"; accuracy {s['accuracy']:.2f}" if "accuracy" in s else "")
                    + (f"; same answer as batch mode {s['agreement_with_batch']:.2f}"
                       if "agreement_with_batch" in s else "") + ".")
    r10, r100 = notes.get("rss10"), notes.get("rss100")
    if r10 and r100:
        rows.append(f"Peak RSS: {r10['max_rss_mb']:.1f} MiB for {r10['clips']} clips, "
                    f"{r100['max_rss_mb']:.1f} MiB for {r100['clips']} clips "
                    f"({100 * (r100['max_rss_mb'] / r10['max_rss_mb'] - 1):+.1f}%); the 100-clip "
                    f"run answered {r100['pairs']} pairs at {r100['clips_per_s']:.2f} clips/s.")
    return "\n".join(rows)


def replace_block(text, name, body):
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        print(f"report: no {begin} marker in the docs; table '{name}' not written",
              file=sys.stderr)
        return text
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", help="directory with the raw benchmark outputs")
    ap.add_argument("--commands", help="JSON {metric: command}")
    ap.add_argument("--out", default="bench/results.json")
    ap.add_argument("--from", dest="source", help="regenerate the docs from this results.json")
    ap.add_argument("--docs", default="docs/PERFORMANCE.md",
                    help='markdown file whose generated tables are replaced ("": none)')
    args = ap.parse_args()
    if args.source:
        with open(args.source) as f:
            entries = json.load(f)
        notes = {}
        for e in entries:
            notes.update(e.get("details", {}))
    else:
        commands = json.loads(read(args.commands)) if args.commands else {}
        entries, notes = collect(args.raw, commands)
        with open(args.out, "w") as f:
            json.dump(entries, f, indent=2)
            f.write("\n")
        print(f"report: {len(entries)} of {len(METRICS)} metrics in {args.out}")
    if args.docs:  # "" (scripts/bench --no-docs): results.json only
        text = read(args.docs)
        text = replace_block(text, "summary", summary_table(entries))
        text = replace_block(text, "e2e", e2e_table(notes))
        text = replace_block(text, "commands", commands_table(entries))
        with open(args.docs, "w") as f:
            f.write(text)
    missing = [n for n in METRICS if n not in {e["name"] for e in entries}]
    if missing:
        print(f"report: not measured: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
