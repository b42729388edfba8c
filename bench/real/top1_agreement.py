#!/usr/bin/env python3
"""Top-1 agreement of omnipipe and llama.cpp on the same token ids (scripts/bench-real).

  python bench/real/top1_agreement.py --ours ours_text.json --logits logits.safetensors \
      --llama llama_top1.json

--ours: `ask_clip --json` output (prompt_ids, ids), --logits: its --dump-logits file (float32
[prompt_len, vocab]), --llama: bench/real/llama_top1.c's output on the same prompt ids. Prints
one JSON object: positions compared, positions where the argmax is the same, the fraction, the
same figure restricted to positions where omnipipe's top-1 / top-2 gap is above 0.05 (random
weights give nearly flat logits, where bf16 rounding alone can swap the top two), and how many
greedy tokens agree from the start.
"""
import argparse
import json

import torch
from safetensors.torch import load_file

from hf_agreement import common_prefix


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--logits", required=True)
    ap.add_argument("--llama", required=True)
    args = ap.parse_args()
    ours = json.load(open(args.ours))
    llama = json.load(open(args.llama))
    logits = load_file(args.logits)["logits"].float()
    n = logits.shape[0]
    if n != len(ours["prompt_ids"]) or n != llama["n_prompt"]:
        raise SystemExit(f"top1_agreement: lengths differ: logits {n}, prompt "
                         f"{len(ours['prompt_ids'])}, llama.cpp {llama['n_prompt']}")
    top2 = logits.topk(2, dim=-1)
    ours_top1 = top2.indices[:, 0].tolist()
    gap = (top2.values[:, 0] - top2.values[:, 1]).tolist()
    same = [a == b for a, b in zip(ours_top1, llama["argmax"])]
    clear = [s for s, g in zip(same, gap) if g > 0.05]
    greedy_ours, greedy_llama = ours["ids"], llama["greedy"]
    prefix = common_prefix(greedy_ours, greedy_llama)
    print(json.dumps({
        "positions": n, "same_top1": sum(same), "top1_agreement": sum(same) / n,
        "clear_positions": len(clear), "same_top1_clear": sum(clear),
        "top1_agreement_clear": sum(clear) / len(clear) if clear else None,
        "median_gap_ours": sorted(gap)[n // 2],
        "greedy_tokens": min(len(greedy_ours), len(greedy_llama)),
        "greedy_same_prefix": prefix,
    }))


if __name__ == "__main__":
    main()
