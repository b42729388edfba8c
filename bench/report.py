#!/usr/bin/python3
"""Turns the raw outputs of scripts/bench into bench/results.json and regenerates the generated
tables of docs/PERFORMANCE.md (between <!-- bench:NAME:begin --> and <!-- bench:NAME:end -->).

  bench/report.py --raw DIR --out bench/results.json --docs docs/PERFORMANCE.md
  bench/report.py --docs docs/PERFORMANCE.md --from bench/results.json   # tables only
  bench/report.py --real-raw DIR --out bench/results.json   # scripts/bench-real's real3b_* metrics

results.json is a JSON array, one entry per metric: {name, value, unit, command, machine{cores,
cpu_model, libtorch_version}, goal, details (supporting figures, optional)}; a metric whose
benchmark failed is left out (and reported, exit status 1). The two runs share the file: a
scripts/bench run (--raw) replaces the component and whole-pipeline metrics and keeps the real3b_*
entries already there; a scripts/bench-real run (--real-raw) replaces only the real3b_* ones."""
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
    "decode_gemv_gb_per_s": ("GB/s", "-", None, "Real model sizes"),
    "decode_gemv_ratio_vs_torch": ("ratio", ">= 1 (faster)", lambda v: v >= 1,
                                   "Real model sizes"),
    "e2e_clips_per_s": ("clips/s", "-", None, "Whole pipeline"),
    "e2e_ratio_vs_python": ("ratio", ">= 3", lambda v: v >= 3, "Whole pipeline"),
    "e2e_overlap_efficiency": ("fraction", ">= 0.85", lambda v: v >= 0.85, "Whole pipeline"),
    "stream_answer_latency_ms_p50": ("ms", "< 100 ms", lambda v: v < 100, "Whole pipeline"),
    "stream_answer_latency_ms_p99": ("ms", "-", None, "Whole pipeline"),
    "rss_mb_10_clips": ("MiB", "-", None, "Whole pipeline"),
    "rss_mb_100_clips": ("MiB", "within 10% of 10 clips", None, "Whole pipeline"),
    # scripts/bench-real (scripts/bench --real): Qwen2.5-Omni-3B shape, CPU, bf16, side by side.
    "real3b_prefill_tokens_per_s": ("tokens/s", "-", None, "Real model sizes"),
    "real3b_prefill_ratio_vs_transformers": ("ratio", ">= 2", lambda v: v >= 2,
                                             "Real model sizes"),
    "real3b_prefill_ratio_vs_llamacpp": ("ratio", ">= 1", lambda v: v >= 1, "Real model sizes"),
    "real3b_decode_tokens_per_s": ("tokens/s", "-", None, "Real model sizes"),
    "real3b_decode_ratio_vs_transformers": ("ratio", ">= 2", lambda v: v >= 2,
                                            "Real model sizes"),
    "real3b_decode_ratio_vs_llamacpp": ("ratio", ">= 1", lambda v: v >= 1, "Real model sizes"),
    "real3b_time_to_first_token_s": ("s", "-", None, "Real model sizes"),
    "real3b_peak_rss_gb": ("GB", "<= 1.2 x weights' bytes", None, "Real model sizes"),
    # bench/real/hf_agreement.py: greedy tokens against transformers at fp32 (common prefix /
    # tokens), and omnipipe's bf16 rounding error against transformers' own (first token's logits
    # against transformers at fp32, rms; 1 = the same error).
    "real3b_greedy_agreement_fp32": ("fraction", "= 1 (identical)", lambda v: v == 1,
                                     "Real model sizes"),
    "real3b_bf16_logit_error_ratio": ("ratio", "<= 1.25", lambda v: v <= 1.25,
                                      "Real model sizes"),
}
REAL = [n for n in METRICS if n.startswith("real3b_")]


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

    def gemv(key):
        g = last_json(os.path.join(raw, "gemv.txt"))
        notes["gemv"] = g
        return g[key]
    attempt("decode_gemv_gb_per_s", lambda: gemv("ours_gb_per_s"))
    attempt("decode_gemv_ratio_vs_torch", lambda: gemv("ratio_vs_torch"))

    def e2e():
        cpp = json.loads(read(os.path.join(raw, "cpp_summary.json")))
        py = json.loads(read(os.path.join(raw, "py_summary.json")))
        notes["e2e"] = {"cpp": cpp, "python": py}
        # Alternating rounds (cpp_summary_N.json / py_summary_N.json): medians, and the median
        # of the rounds' ratios with its range.
        rounds = []
        n = 1
        while os.path.exists(os.path.join(raw, f"cpp_summary_{n}.json")):
            c = json.loads(read(os.path.join(raw, f"cpp_summary_{n}.json")))
            p = json.loads(read(os.path.join(raw, f"py_summary_{n}.json")))
            rounds.append((c["clips_per_s"], p["clips_per_s"]))
            n += 1
        if not rounds:
            return cpp["clips_per_s"], cpp["clips_per_s"] / py["clips_per_s"]
        ratios = [c / p for c, p in rounds]
        notes["e2e"]["rounds"] = {"cpp_clips_per_s": [c for c, _ in rounds],
                                  "python_clips_per_s": [p for _, p in rounds],
                                  "ratio_min": min(ratios), "ratio_max": max(ratios)}
        return median([c for c, _ in rounds]), median(ratios)
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
            "parity": "e2e_ratio_vs_python", "gemv": "decode_gemv_ratio_vs_torch",
            "floor": "e2e_overlap_efficiency",
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


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def collect_real(raw, commands):
    """scripts/bench-real's rounds -> the real3b_* entries (medians; paired per-round ratios)."""
    meta = json.loads(read(os.path.join(raw, "meta.json")))
    rounds = []
    for r in range(1, meta["rounds"] + 1):  # the rounds that finished (omnipipe's run first)
        p = os.path.join(raw, f"ours_{r}.json")
        if not os.path.exists(p) or os.path.getsize(p) == 0:
            break
        rd = {"ours": json.loads(read(p))}
        p = os.path.join(raw, f"hf_{r}.json")
        if os.path.exists(p) and os.path.getsize(p) > 0:
            rd["hf"] = last_json(p)
        p = os.path.join(raw, f"llama_{r}.json")
        if os.path.exists(p) and os.path.getsize(p) > 0:
            rd["llama"] = last_json(p)
        rounds.append(rd)
    if not rounds:
        raise SystemExit(f"report: no finished round in {raw}")
    keys = ("prefill_tokens_per_s", "decode_tokens_per_s", "time_to_first_token_s", "max_rss_mb",
            "load_seconds", "prompt_seconds", "prefill_seconds")
    per_round = []
    for rd in rounds:
        row = {"ours": {k: rd["ours"][k] for k in keys}}
        if "hf" in rd:
            row["transformers"] = {k: rd["hf"][k] for k in keys}
        if "llama" in rd:
            row["llamacpp"] = {k: rd["llama"][k] for k in ("prefill_tokens_per_s",
                                                          "decode_tokens_per_s",
                                                          "prefill_seconds")}
        per_round.append(row)

    def med(side, key):
        vals = [row[side][key] for row in per_round if side in row]
        return median(vals) if vals else None

    def ratios(other, key):
        return [row["ours"][key] / row[other][key] for row in per_round
                if other in row and row[other][key] > 0]

    first = rounds[0]["ours"]
    sides = {"omnipipe": {k: med("ours", k) for k in keys}}
    if any("transformers" in row for row in per_round):
        sides["transformers"] = {k: med("transformers", k) for k in keys}
    if any("llamacpp" in row for row in per_round):
        sides["llamacpp"] = {k: med("llamacpp", k) for k in ("prefill_tokens_per_s",
                                                             "decode_tokens_per_s",
                                                             "prefill_seconds")}
    versions = {"omnipipe_libtorch": None}
    agreement = {}
    if "hf" in rounds[0]:
        versions.update(rounds[0]["hf"].get("versions", {}))
        same_prompt = all(rd["hf"]["prompt_ids"] == rd["ours"]["prompt_ids"] for rd in rounds
                          if "hf" in rd)
        pairs = [(rd["ours"]["ids"], rd["hf"]["ids"]) for rd in rounds if "hf" in rd]
        prefix = []
        for a, b in pairs:
            n = 0
            for x, y in zip(a, b):
                if x != y:
                    break
                n += 1
            prefix.append(n)
        agreement["transformers"] = {
            "same_prompt_ids": same_prompt, "prompt_tokens": len(first["prompt_ids"]),
            "same_greedy_tokens_all_rounds": all(a == b for a, b in pairs),
            "greedy_tokens": len(first["ids"]), "same_greedy_prefix_min": min(prefix),
            "identical_rounds": sum(1 for a, b in pairs if a == b), "rounds": len(pairs)}
        # Where they part, transformers' own logits at that step (same prefix up to it): how far
        # its token leads omnipipe's, against the usual lead of its top-1 over its top-2.
        parts = [rd["hf"]["divergence"] for rd in rounds
                 if "hf" in rd and rd["hf"].get("divergence")]
        gaps = [g for rd in rounds if "hf" in rd for g in rd["hf"].get("top2_logit_gaps", [])]
        if parts:
            agreement["transformers"]["divergences"] = parts
        if gaps:
            agreement["transformers"]["top2_logit_gap_median"] = median(gaps)
    if "llama" in rounds[0]:
        versions["llamacpp"] = {"n_ubatch": rounds[0]["llama"].get("n_ubatch")}
        try:
            versions["llamacpp"]["version_text"] = " ".join(
                read(os.path.join(raw, "llamacpp_version.txt")).split())
        except OSError:
            pass
    try:
        agreement["llamacpp"] = last_json(os.path.join(raw, "top1.json"))
    except (OSError, ValueError):
        pass
    try:
        exact = last_json(os.path.join(raw, "hf_agreement.json"))
        agreement.setdefault("transformers", {})["exactness"] = exact
    except (OSError, ValueError):
        exact = {}
    common = {"rounds": len(rounds), "threads": meta["threads"], "fps": meta["fps"],
              "prompt_tokens": len(first["prompt_ids"]), "prompt_tokens_by_modality":
              first.get("tokens"), "new_tokens": len(first["ids"]),
              "weights_bytes": meta["weights_bytes"], "gguf_bytes": meta.get("gguf_bytes"),
              "clip": "10 s 640x360 25 fps H.264 test pattern + espeak-ng speech (AAC 16 kHz)",
              "question": meta["question"]}
    values = {}
    spread = {}
    values["real3b_prefill_tokens_per_s"] = sides["omnipipe"]["prefill_tokens_per_s"]
    values["real3b_decode_tokens_per_s"] = sides["omnipipe"]["decode_tokens_per_s"]
    values["real3b_time_to_first_token_s"] = sides["omnipipe"]["time_to_first_token_s"]
    values["real3b_peak_rss_gb"] = sides["omnipipe"]["max_rss_mb"] * 2**20 / 1e9
    g32 = exact.get("greedy", {}).get("fp32")
    if g32 and g32["tokens"] > 0:
        values["real3b_greedy_agreement_fp32"] = g32["same_prefix"] / g32["tokens"]
    if "bf16_error_ratio" in exact:
        values["real3b_bf16_logit_error_ratio"] = exact["bf16_error_ratio"]
    for other, tag in (("transformers", "transformers"), ("llamacpp", "llamacpp")):
        for kind in ("prefill", "decode"):
            rs = ratios(other, f"{kind}_tokens_per_s")
            if rs:
                name = f"real3b_{kind}_ratio_vs_{tag}"
                values[name] = median(rs)
                spread[name] = [round(min(rs), 4), round(max(rs), 4)]
    notes = {"real3b": {"common": common, "sides": sides, "per_round": per_round,
                        "ratio_spread": spread, "versions": versions, "agreement": agreement}}
    m = dict(machine(raw), mem_total_gb=round(meta.get("mem_total_gb", 0), 1))
    if meta.get("libtorch"):
        m["libtorch_version"] = meta["libtorch"]
    versions["omnipipe_libtorch"] = m["libtorch_version"]
    entries = []
    for name in REAL:
        if name not in values:
            print(f"report: {name}: not measured", file=sys.stderr)
            continue
        e = {"name": name, "value": round(values[name], 4), "unit": METRICS[name][0],
             "command": commands.get(name, ""), "machine": m, "goal": METRICS[name][1]}
        if name in spread:
            e["details"] = {"ratio_min_max": spread[name]}
        if name == "real3b_peak_rss_gb":
            e["details"] = {"weights_bytes": meta["weights_bytes"],
                            "fraction_of_weights": values[name] * 1e9 / meta["weights_bytes"]}
        if name == "real3b_prefill_tokens_per_s":
            e["details"] = notes
        entries.append(e)
    return entries, notes


def fmt(v):
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def status(name, value, by_name):
    test = METRICS[name][2]
    if name == "real3b_peak_rss_gb" and "weights_bytes" in by_name:
        return "met" if value * 1e9 <= 1.2 * by_name["weights_bytes"] else "not met"
    if name == "rss_mb_100_clips" and "rss_mb_10_clips" in by_name:
        base = by_name["rss_mb_10_clips"]
        return "met" if value <= 1.1 * base else "not met"
    if test is None:
        return ""
    return "met" if test(value) else "not met"


def summary_table(entries):
    by_name = {e["name"]: e["value"] for e in entries}
    for e in entries:
        if e["name"] == "real3b_peak_rss_gb":
            by_name["weights_bytes"] = e.get("details", {}).get("weights_bytes", 0)
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
                f"{m.get('libtorch_version', '?')}. Generated by `scripts/bench` (`real3b_*`: "
                "`scripts/bench --real`) from `bench/results.json`.")
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


def real_table(r, entries):
    """The side-by-side table of scripts/bench-real (docs block real3b)."""
    c, sides, spread = r["common"], r["sides"], r["ratio_spread"]
    by_name = {e["name"]: e["value"] for e in entries}
    o, h, lc = sides["omnipipe"], sides.get("transformers"), sides.get("llamacpp")

    def cell(side, key, scale=1.0):
        if side is None or side.get(key) is None:
            return "-"
        return fmt(side[key] * scale)

    def ratio(name):
        if name not in by_name:
            return "-"
        lo, hi = spread.get(name, [by_name[name], by_name[name]])
        return f"**{by_name[name]:.2f}** ({lo:.2f}-{hi:.2f})"

    gb = 2**20 / 1e9
    rows = [
        f"{c['rounds']} alternating rounds (omnipipe, transformers, llama.cpp), {c['threads']} "
        f"threads each, bf16 weights, greedy; prompt {c['prompt_tokens']} tokens "
        f"({', '.join(f'{k} {v}' for k, v in (c.get('prompt_tokens_by_modality') or {}).items() if v)}"
        f"), {c['new_tokens']} generated tokens; input: {c['clip']} at {c['fps']:g} frames/s with "
        f"its sound track, question \"{c['question']}\". Medians; ratios are the medians of "
        "the per-round ratios (min-max over the rounds).",
        "",
        "| figure | omnipipe | transformers | llama.cpp | omnipipe / transformers | "
        "omnipipe / llama.cpp |",
        "|---|---|---|---|---|---|",
        f"| prefill, tokens/s (language model over the prompt) | {cell(o, 'prefill_tokens_per_s')} "
        f"| {cell(h, 'prefill_tokens_per_s')} | {cell(lc, 'prefill_tokens_per_s')} | "
        f"{ratio('real3b_prefill_ratio_vs_transformers')} | "
        f"{ratio('real3b_prefill_ratio_vs_llamacpp')} |",
        f"| decode, tokens/s (after the prompt) | {cell(o, 'decode_tokens_per_s')} | "
        f"{cell(h, 'decode_tokens_per_s')} | {cell(lc, 'decode_tokens_per_s')} | "
        f"{ratio('real3b_decode_ratio_vs_transformers')} | "
        f"{ratio('real3b_decode_ratio_vs_llamacpp')} |",
        f"| time to first token from process start, s | {cell(o, 'time_to_first_token_s')} | "
        f"{cell(h, 'time_to_first_token_s')} | | | |",
        f"| of which loading, s | {cell(o, 'load_seconds')} | {cell(h, 'load_seconds')} | | | |",
        f"| of which media decoding, processing and towers, s | {cell(o, 'prompt_seconds')} | "
        f"{cell(h, 'prompt_seconds')} | | | |",
        f"| of which prefill, s | {cell(o, 'prefill_seconds')} | {cell(h, 'prefill_seconds')} "
        f"| {cell(lc, 'prefill_seconds')} | | |",
        f"| peak RSS, GB | {cell(o, 'max_rss_mb', gb)} | {cell(h, 'max_rss_mb', gb)} | | | |",
        "",
        f"Weights: {c['weights_bytes'] / 1e9:.2f} GB of bf16 safetensors (peak RSS "
        f"{o['max_rss_mb'] * gb * 1e9 / c['weights_bytes']:.2f}x of it; goal <= 1.2x)"
        + (f"; GGUF {c['gguf_bytes'] / 1e9:.2f} GB (text model only)" if c.get("gguf_bytes")
           else "") + "."]
    a = r.get("agreement", {})
    t = a.get("transformers")
    if t:
        rows.append(f"Agreement with transformers: prompt ids {'identical' if t['same_prompt_ids'] else 'DIFFERENT'}"
                    f" ({t['prompt_tokens']} tokens); greedy tokens "
                    f"{'identical in every round' if t['same_greedy_tokens_all_rounds'] else 'differ'}"
                    f" ({t['greedy_tokens']} tokens; shortest common prefix "
                    f"{t['same_greedy_prefix_min']}).")
        if t.get("divergences"):
            d = t["divergences"]
            steps = sorted({x["step"] for x in d})
            rows.append(
                f"Greedy tokens identical in {t.get('identical_rounds', 0)} of "
                f"{t.get('rounds', len(d))} rounds. Where they part (generated token "
                f"{', '.join(str(x + 1) for x in steps)}), transformers' own logits rank omnipipe's "
                f"token {', '.join(str(x['other_rank'] + 1) for x in d)} and put it "
                f"{', '.join(format(x['logit_gap'], '.3g') for x in d)} below its choice; over all steps "
                f"transformers' top-1 leads its top-2 by a median "
                f"{t.get('top2_logit_gap_median', float('nan')):.3g}: a near tie that one "
                "bf16 rounding more or less decides (random weights give nearly flat logits).")
    x = (t or {}).get("exactness")
    if x:
        rows.append(exactness_text(x))
    ll = a.get("llamacpp")
    if ll:
        clear = (f"; {ll['same_top1_clear']} of {ll['clear_positions']} where omnipipe's top-1 "
                 "leads by more than 0.05" if ll.get("clear_positions") else "")
        rows.append(f"Agreement with llama.cpp (text-only prompt, same ids, teacher-forced): top-1 "
                    f"the same at {ll['same_top1']} of {ll['positions']} positions "
                    f"({100 * ll['top1_agreement']:.1f}%){clear}; greedy continuation: first "
                    f"{ll['greedy_same_prefix']} of {ll['greedy_tokens']} tokens the same.")
    v = r.get("versions", {})
    lv = v.get("llamacpp") or {}
    rows.append(f"Versions: omnipipe with libtorch {v.get('omnipipe_libtorch')}; transformers "
                f"{v.get('transformers', '-')} with torch {v.get('torch', '-')}; llama.cpp "
                f"{lv.get('version_text', '-')} (CPU backend, n_ubatch {lv.get('n_ubatch', '-')}, "
                "f16 KV cache, flash attention auto).")
    return "\n".join(rows)


def exactness_text(x):
    """bench/real/hf_agreement.py's figures as a paragraph of the real3b block."""
    g, f = x.get("greedy", {}), x.get("first_logits", {})
    out = []
    g32, f32 = g.get("fp32"), f.get("omnipipe_fp32_vs_transformers_fp32")
    if g32:
        out.append(
            f"At fp32 (both sides once more, same prompt): greedy tokens "
            f"{'identical' if g32['identical'] else 'DIFFERENT'} ({g32['same_prefix']} of "
            f"{g32['tokens']} the same from the start; transformers' top-1 led its top-2 by as "
            f"little as {g32['transformers_top2_gap_min']:.2g} on the way)"
            + (f"; the first token's logits differ by at most {f32['max_abs_diff']:.2g} (rms "
               f"{f32['rms_diff']:.2g}; the logits' rms is {f['reference_rms']:.3g})" if f32
               else "") + ".")
    runs = x.get("fp32_runs")
    if runs:
        o, t = runs["omnipipe"], runs["transformers"]
        gb = 2**20 / 1e9
        out.append(f"Those fp32 runs (one each, not alternated) took prefill "
                   f"{o['prefill_tokens_per_s']:.3g} / decode {o['decode_tokens_per_s']:.3g} "
                   f"tokens/s and {o['max_rss_mb'] * gb:.1f} GB of peak RSS (omnipipe), "
                   f"{t['prefill_tokens_per_s']:.3g} / {t['decode_tokens_per_s']:.3g} and "
                   f"{t['max_rss_mb'] * gb:.1f} GB (transformers).")
    ob, tb = (f.get("omnipipe_bf16_vs_transformers_fp32"),
              f.get("transformers_bf16_vs_transformers_fp32"))
    if ob and tb:
        self_prefix = g.get("transformers_bf16_vs_fp32_same_prefix")
        out.append(
            f"At bf16 each program rounds differently: against transformers' fp32 logits of the "
            f"first token, omnipipe's bf16 ones are {ob['rms_diff']:.3g} off (rms), transformers' "
            f"own bf16 ones {tb['rms_diff']:.3g} (ratio {x['bf16_error_ratio']:.2f}); a top-2 gap "
            "below that is decided by rounding"
            + (f" (transformers' own bf16 greedy tokens part from its fp32 ones at token "
               f"{self_prefix + 1})" if self_prefix is not None and g32 and
               self_prefix < g32["tokens"] else "") + ".")
    return " ".join(out)


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
    ap.add_argument("--raw", help="directory with scripts/bench's raw benchmark outputs")
    ap.add_argument("--real-raw", help="directory with scripts/bench-real's raw outputs")
    ap.add_argument("--commands", help="JSON {metric: command}")
    ap.add_argument("--out", default="bench/results.json")
    ap.add_argument("--from", dest="source", help="regenerate the docs from this results.json")
    ap.add_argument("--docs", default="docs/PERFORMANCE.md",
                    help='markdown file whose generated tables are replaced ("": none)')
    args = ap.parse_args()
    if args.source:
        with open(args.source) as f:
            entries = json.load(f)
        expected = []
    else:
        commands = json.loads(read(args.commands)) if args.commands else {}
        if args.real_raw:
            fresh, _ = collect_real(args.real_raw, commands)
            expected = REAL
        else:
            fresh, _ = collect(args.raw, commands)
            expected = [n for n in METRICS if n not in REAL]
        # Keep the other run's entries (scripts/bench and scripts/bench-real share the file).
        kept = []
        if os.path.exists(args.out):
            with open(args.out) as f:
                kept = [e for e in json.load(f) if e["name"] not in expected]
        order = {n: i for i, n in enumerate(METRICS)}
        entries = sorted(kept + fresh, key=lambda e: order.get(e["name"], len(order)))
        with open(args.out, "w") as f:
            json.dump(entries, f, indent=2)
            f.write("\n")
        print(f"report: {len(fresh)} of {len(expected)} metrics of this run in {args.out} "
              f"({len(entries)} in all)")
    notes = {}
    for e in entries:
        notes.update(e.get("details", {}))
    if args.docs:  # "" (scripts/bench --no-docs): results.json only
        text = read(args.docs)
        text = replace_block(text, "summary", summary_table(entries))
        if not args.real_raw:
            text = replace_block(text, "e2e", e2e_table(notes))
        if "real3b" in notes:
            text = replace_block(text, "real3b", real_table(notes["real3b"], entries))
        text = replace_block(text, "commands", commands_table(entries))
        with open(args.docs, "w") as f:
            f.write(text)
    missing = [n for n in expected if n not in {e["name"] for e in entries}]
    if missing:
        print(f"report: not measured: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
