#!/usr/bin/env python3
"""How exactly omnipipe reproduces transformers on the 3B-shaped checkpoint (scripts/bench-real).

  python bench/real/hf_agreement.py --dir RAW

RAW holds, for the same video prompt and greedy decoding, one run of each side per precision:
  ours_bf16.json + ours_bf16_logits.safetensors   `ask_clip --json --dump-logits` (float32
                                                  [prompt, vocab]: the prompt's logits)
  hf_bf16.json + hf_bf16_logits.safetensors       bench/python/real3b_transformers.py --json
                                                  --dump-logits ([steps, vocab]: each generated
                                                  step's logits)
  ours_fp32.json (+ _logits), hf_fp32.json (+ _logits)   the same at fp32 (optional: skipped
                                                  where the machine lacks the memory)
The first generated token's logits are the last prompt row of ours and the first step of
transformers'. Prints one JSON object:
  greedy          per precision: tokens, common prefix, identical, and where they part:
                  transformers' own top-2 gap there
  first_logits    max |diff| and rms diff of the first token's logits for each pair, and the rms of
                  the fp32 reference logits (their scale)
  bf16_error_ratio  rms(omnipipe bf16 - transformers fp32) / rms(transformers bf16 - transformers
                  fp32): how much further omnipipe's bf16 answer is from the fp32 one than
                  transformers' own bf16 answer (1: the same rounding error)
  fp32_runs       the fp32 runs' prefill and decode tokens/s and peak RSS (one run each)
At bf16 random weights give nearly flat logits: a top-2 gap below the bf16 rounding error of the
logits (their rms difference from fp32) is a coin toss that each program's rounding decides, so
the greedy tokens of two correct bf16 programs may part there; at fp32 they must not.
"""
import argparse
import json
import os

import torch
from safetensors.torch import load_file


def load(raw, name):
    """(run JSON, first generated token's logits or None) of one side."""
    j = os.path.join(raw, f"{name}.json")
    if not os.path.exists(j) or os.path.getsize(j) == 0:
        return None, None
    with open(j) as f:
        run = json.loads(f.read().strip().splitlines()[-1])
    st = os.path.join(raw, f"{name}_logits.safetensors")
    logits = None
    if os.path.exists(st):
        t = load_file(st)["logits"].float()
        # ours: the prompt's rows (the last one gives the first token); transformers': one row
        # per generated step (the first one).
        logits = t[-1] if name.startswith("ours") else t[0]
    return run, logits


def common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    sides = {n: load(args.dir, n) for n in ("ours_bf16", "hf_bf16", "ours_fp32", "hf_fp32")}
    if sides["ours_bf16"][0] is None or sides["hf_bf16"][0] is None:
        raise SystemExit(f"hf_agreement: {args.dir} lacks ours_bf16.json or hf_bf16.json")

    greedy = {}
    for prec in ("bf16", "fp32"):
        ours, hf = sides[f"ours_{prec}"][0], sides[f"hf_{prec}"][0]
        if ours is None or hf is None:
            continue
        if ours["prompt_ids"] != hf["prompt_ids"]:
            raise SystemExit(f"hf_agreement: {prec}: the prompt ids differ")
        n = common_prefix(ours["ids"], hf["ids"])
        g = {"tokens": min(len(ours["ids"]), len(hf["ids"])), "same_prefix": n,
             "identical": ours["ids"] == hf["ids"],
             "transformers_top2_gap_min": min(hf["top2_logit_gaps"])}
        if n < g["tokens"]:
            g["parts_at_token"] = n + 1
            g["transformers_top2_gap_there"] = hf["top2_logit_gaps"][n]
        greedy[prec] = g
    if "fp32" in greedy:
        # transformers against itself: its bf16 greedy tokens against its fp32 ones.
        greedy["transformers_bf16_vs_fp32_same_prefix"] = common_prefix(
            sides["hf_bf16"][0]["ids"], sides["hf_fp32"][0]["ids"])

    first = {}
    pairs = (("omnipipe_bf16_vs_transformers_bf16", "ours_bf16", "hf_bf16"),
             ("omnipipe_fp32_vs_transformers_fp32", "ours_fp32", "hf_fp32"),
             ("omnipipe_bf16_vs_transformers_fp32", "ours_bf16", "hf_fp32"),
             ("transformers_bf16_vs_transformers_fp32", "hf_bf16", "hf_fp32"))
    for name, a, b in pairs:
        la, lb = sides[a][1], sides[b][1]
        if la is None or lb is None:
            continue
        if la.shape != lb.shape:
            raise SystemExit(f"hf_agreement: {a} and {b}: logits of different shapes")
        d = la - lb
        first[name] = {"max_abs_diff": float(d.abs().max()),
                       "rms_diff": float(d.pow(2).mean().sqrt()),
                       "same_top1": int(la.argmax()) == int(lb.argmax())}
    ref = sides["hf_fp32"][1]
    if ref is not None:
        first["reference_rms"] = float(ref.pow(2).mean().sqrt())
    out = {"greedy": greedy, "first_logits": first}
    # The fp32 runs' own speed (one run each, not alternated: a side note, not a benchmark).
    if sides["ours_fp32"][0] is not None and sides["hf_fp32"][0] is not None:
        keys = ("prefill_tokens_per_s", "decode_tokens_per_s", "max_rss_mb")
        out["fp32_runs"] = {"omnipipe": {k: sides["ours_fp32"][0].get(k) for k in keys},
                            "transformers": {k: sides["hf_fp32"][0].get(k) for k in keys}}
    if ("omnipipe_bf16_vs_transformers_fp32" in first and
            "transformers_bf16_vs_transformers_fp32" in first):
        out["bf16_error_ratio"] = (first["omnipipe_bf16_vs_transformers_fp32"]["rms_diff"] /
                                   first["transformers_bf16_vs_transformers_fp32"]["rms_diff"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
