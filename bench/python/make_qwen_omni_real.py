#!/usr/bin/env python3
"""Writes a full-size, Qwen2.5-Omni-shaped hub directory with random weights, for load, memory and
speed measurements (never committed: 3B is ~9.4 GB in bf16).

  ~/.cache/omnipipe-ref-venv/bin/python bench/python/make_qwen_omni_real.py --size 3b --out DIR

The config has the published models' dimensions (Qwen2.5-Omni-3B / -7B model cards' config.json:
thinker text, vision and audio towers); the weights are random (normal, std 0.02 for matrices;
norms near 1 and biases near 0 but every element perturbed), written as transformers writes a
Qwen2_5OmniForConditionalGeneration checkpoint: `thinker.`-prefixed names, shards of --shard-gb
plus model.safetensors.index.json, config.json and generation_config.json. The talker and
token2wav (speech output) are not written: omnipipe does not load them, and they would only cost
disk. The tokenizer is copied from --tokenizer-dir (default: the committed Qwen2.5-Omni tokenizer
fixture, whose special tokens have the real ids; its BPE is small, so text is tokenized
differently from the real model but every id is in range); the chat template and preprocessor
config from --processor-dir (default: the e2e fixture, which has the real model's).

Tensor names and shapes come from transformers itself (the thinker built on the meta device, so
no memory is used), and transformers' hub name mapping is checked against the tiny fixture's
index. Generation takes a few minutes (bounded by random-number generation and disk).
"""
import argparse
import json
import os
import re
import shutil
import sys
import time

import torch
from safetensors.torch import save_file
from transformers import Qwen2_5OmniConfig, Qwen2_5OmniThinkerForConditionalGeneration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Published dimensions (config.json of Qwen/Qwen2.5-Omni-3B and Qwen/Qwen2.5-Omni-7B).
SIZES = {
    "3b": dict(text=dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008,
                         num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2),
               out=2048),
    "7b": dict(text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                         num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4),
               out=3584),
}


def config_for(size):
    s = SIZES[size]
    text = dict(s["text"], rms_norm_eps=1e-6, max_position_embeddings=32768,
                tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                 "mrope_section": [16, 24, 24]})
    vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                  in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  window_size=112, out_hidden_size=s["out"], fullatt_block_indexes=[7, 15, 23, 31])
    audio = dict(num_mel_bins=128, encoder_layers=32, encoder_attention_heads=20,
                 encoder_ffn_dim=5120, d_model=1280, max_source_positions=1500, n_window=100,
                 output_dim=s["out"])
    # The published thinker_config also names the vision start/end/pad ids (transformers reads
    # them there when it lays out positions).
    cfg = Qwen2_5OmniConfig(thinker_config=dict(text_config=text, vision_config=vision,
                                                audio_config=audio, vision_start_token_id=151652,
                                                vision_end_token_id=151653,
                                                vision_token_id=151654),
                            enable_audio_output=False)
    cfg.architectures = ["Qwen2_5OmniForConditionalGeneration"]
    return cfg


def hub_name(internal):
    # transformers 5 keeps the thinker's towers under model.*; the hub layout (what
    # save_pretrained writes for Qwen2_5OmniForConditionalGeneration) is thinker.{model,visual,
    # audio_tower,lm_head}.*.
    for a, b in (("model.language_model.", "thinker.model."), ("model.visual.", "thinker.visual."),
                 ("model.audio_tower.", "thinker.audio_tower."), ("lm_head.", "thinker.lm_head.")):
        if internal.startswith(a):
            return b + internal[len(a):]
    return "thinker." + internal


def random_like(name, shape, dtype, gen):
    t = torch.empty(shape, dtype=torch.float32)
    leaf = name.rsplit(".", 1)[-1]
    is_norm = ("norm" in name or "ln_" in name or name.endswith("ln_q.weight")) and leaf == "weight"
    if is_norm:
        t.normal_(1.0, 0.05, generator=gen)
    elif leaf == "bias":
        t.normal_(0.0, 0.02, generator=gen)
    else:
        t.normal_(0.0, 0.02, generator=gen)
    return t.to(dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="3b")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    ap.add_argument("--shard-gb", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer-dir",
                    default=os.path.join(ROOT, "tests/fixtures/hf/qwen2_5_omni_tokenizer"))
    ap.add_argument("--processor-dir",
                    default=os.path.join(ROOT, "tests/fixtures/hf/qwen2_5_omni_e2e"),
                    help="chat template and preprocessor config come from here (the real model's)")
    args = ap.parse_args()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]

    cfg = config_for(args.size)
    with torch.device("meta"):
        thinker = Qwen2_5OmniThinkerForConditionalGeneration(cfg.thinker_config)
    names = [(hub_name(n), tuple(p.shape)) for n, p in thinker.state_dict().items()
             if not n.endswith("inv_freq")]
    # Every name must follow (up to layer numbers) the hub layout the tiny fixture (written by save_pretrained) has.
    tiny_index = os.path.join(ROOT, "tests/fixtures/hf/qwen2_5_omni_tiny/model.safetensors.index.json")
    def pattern(n):  # layer numbers differ between sizes
        return re.sub(r"\.(layers|blocks)\.\d+\.", r".\1.N.", n)

    tiny = {pattern(n) for n in json.load(open(tiny_index))["weight_map"]
            if n.startswith("thinker.")}
    ours = {pattern(n) for n, _ in names}
    if tiny != ours:
        sys.exit(f"hub names differ from the tiny fixture's: {sorted(tiny ^ ours)[:10]}")

    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):
        if f.endswith(".safetensors") or f.endswith(".index.json"):
            os.remove(os.path.join(args.out, f))
    gen = torch.Generator().manual_seed(args.seed)
    elem = torch.tensor([], dtype=dtype).element_size()
    limit = int(args.shard_gb * 2**30)
    shards, current, current_bytes = [], {}, 0

    def flush():
        fname = f"model-{len(shards) + 1:05d}-of-NNNNN.safetensors"
        save_file(current, os.path.join(args.out, fname), metadata={"format": "pt"})
        shards.append((fname, sorted(current)))

    total_params = sum(int(torch.Size(s).numel()) for _, s in names)
    t0, done = time.time(), 0
    for name, shape in names:
        numel = int(torch.Size(shape).numel())
        if current and current_bytes + numel * elem > limit:
            flush()
            current, current_bytes = {}, 0
        current[name] = random_like(name, shape, dtype, gen)
        current_bytes += numel * elem
        done += numel
        print(f"\r{100 * done / total_params:5.1f}% of {total_params / 1e9:.2f} B parameters "
              f"({time.time() - t0:.0f} s)", end="", file=sys.stderr, flush=True)
    if current:
        flush()
    print(file=sys.stderr)
    n = len(shards)
    weight_map = {}
    for i, (fname, tensor_names) in enumerate(shards, start=1):
        final = f"model-{i:05d}-of-{n:05d}.safetensors"
        os.rename(os.path.join(args.out, fname), os.path.join(args.out, final))
        for t in tensor_names:
            weight_map[t] = final
    total_bytes = total_params * elem
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total_bytes}, "weight_map": weight_map}, f, indent=2)
    cfg_dict = cfg.to_dict()
    cfg_dict["dtype"] = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[args.dtype]
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": [151645, 151643], "pad_token_id": 151643,
                   "do_sample": False}, f, indent=2)
    for d, prefixes in ((args.tokenizer_dir, ("tokenizer", "special_tokens", "vocab", "merges")),
                        (args.processor_dir, ("chat_template", "preprocessor_config",
                                              "video_preprocessor_config"))):
        for f in os.listdir(d):
            if f.startswith(prefixes):
                shutil.copy(os.path.join(d, f), os.path.join(args.out, f))
    # The fixture tokenizer's small BPE leaves most ids below the special tokens undefined; a random
    # model generates any id, so every id gets a token (decoding then never meets an unknown id).
    tok_path = os.path.join(args.out, "tokenizer.json")
    if os.path.exists(tok_path):
        tok = json.load(open(tok_path, encoding="utf-8"))
        vocab = tok["model"]["vocab"]
        taken = set(vocab.values()) | {a["id"] for a in tok.get("added_tokens", [])}
        first_added = min((a["id"] for a in tok.get("added_tokens", [])), default=len(vocab))
        for i in range(first_added):
            if i not in taken:
                vocab[f"<unused{i}>"] = i
        with open(tok_path, "w", encoding="utf-8") as f:
            json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(f"Random-weight Qwen2.5-Omni-{args.size.upper()}-shaped thinker ({args.dtype}), "
                "written by bench/python/make_qwen_omni_real.py for measurements only. "
                "Talker and token2wav are not included.\n")
    print(f"wrote {args.out}: {total_params / 1e9:.2f} B parameters, {total_bytes / 2**30:.2f} GiB "
          f"in {n} shards ({time.time() - t0:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
