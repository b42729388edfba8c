#!/usr/bin/env python3
"""transformers anchor of scripts/bench-real: one question about one media file, answered by
transformers' Qwen2.5-Omni thinker on a Hugging Face directory, timed the way `ask_clip --model DIR
--json` times omnipipe, and printed as one JSON object (the same field names).

  ~/.cache/omnipipe-ref-venv/bin/python bench/python/real3b_transformers.py --model DIR \
      --file clip.mp4 --question "..." --fps 2 --max-new-tokens 16 --threads 2 --dtype bf16

What it runs is what a researcher runs (the model card's recipe): qwen-omni-utils'
process_mm_info, Qwen2_5OmniProcessor (with the video's sound track when --audio-in-video is on),
Qwen2_5OmniForConditionalGeneration(...).thinker.generate (a
Qwen2_5OmniThinkerForConditionalGeneration), greedy, eager PyTorch,
torch.set_num_threads(--threads). Timing points (as in ask_clip):
  load_seconds          from_pretrained of the model and the processor
  prompt_seconds        media decoding and processing (process_mm_info + processor) and the two
                        towers (the towers run inside generate(); their time, measured with forward
                        hooks on model.visual and model.audio_tower, is moved here)
  prefill_seconds       generate() up to the first token, minus the towers
  decode_tokens_per_s   tokens after the first / time after the first
  time_to_first_token_s from process start (/proc/self/stat), loading included
  max_rss_mb            getrusage peak RSS
"""
import argparse
import json
import os
import resource
import sys
import time
import warnings


def seconds_since_process_start():
    """Seconds since exec, from /proc/self/stat's start time and the boot clock (like ask_clip)."""
    with open("/proc/self/stat") as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2:].split()
    start_ticks = int(fields[22 - 3])
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--file", default="", help="image, audio or video ('': text only)")
    ap.add_argument("--question", required=True)
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--audio-in-video", choices=["on", "off"], default="on")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--attn-implementation", default="",
                    help="transformers' attention implementation (eager, sdpa; '': its default)")
    ap.add_argument("--dump-logits", default="",
                    help="write each generated step's logits (float32 [steps, vocab], tensor "
                         "'logits') to this safetensors file")
    ap.add_argument("--compare-ids", default="",
                    help="a JSON file with the 'ids' another program generated for the same "
                         "prompt: where the greedy tokens first differ, report how far apart "
                         "this model's own logits put the two tokens there")
    args = ap.parse_args()
    if args.max_new_tokens < 1:
        sys.exit("real3b_transformers: --max-new-tokens must be >= 1")
    if args.file and not os.path.isfile(args.file):
        sys.exit(f"real3b_transformers: {args.file}: no such file")
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        sys.exit(f"real3b_transformers: {args.model} has no config.json")

    warnings.filterwarnings("ignore")
    import torch
    import transformers
    from transformers import (PreTrainedModel, Qwen2_5OmniForConditionalGeneration,
                              Qwen2_5OmniProcessor)
    from transformers.utils import logging as hf_logging
    from qwen_omni_utils import process_mm_info

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]

    t0 = time.perf_counter()
    # The directory has no talker and no spk_dict.pt (enable_audio_output is off): the class's own
    # from_pretrained insists on the speaker file, so the generic loader is called, as the fixture
    # generators do (scripts/fixtures/make_qwen_omni_e2e.py).
    model = PreTrainedModel.from_pretrained.__func__(Qwen2_5OmniForConditionalGeneration,
                                                     args.model, dtype=dtype,
                                                     **({"attn_implementation":
                                                         args.attn_implementation}
                                                        if args.attn_implementation else {}))
    model.eval()
    thinker = model.thinker
    processor = Qwen2_5OmniProcessor.from_pretrained(args.model)
    # The published config.json names the vision start/end ids in thinker_config; transformers 5
    # reads them there (get_rope_index) without a default. Checkpoints made by an earlier
    # make_qwen_omni_real.py lack them: take the tokenizer's ids (what omnipipe does).
    tok = processor.tokenizer
    for key, token in (("vision_start_token_id", "<|vision_bos|>"),
                       ("vision_end_token_id", "<|vision_eos|>"),
                       ("vision_token_id", "<|vision_pad|>")):
        if getattr(thinker.config, key, None) is None:
            setattr(thinker.config, key, tok.convert_tokens_to_ids(token))
    load_s = time.perf_counter() - t0

    # Tower time inside generate(): forward hooks on the two towers.
    tower = {"seconds": 0.0, "start": 0.0}

    def pre(_m, _a):
        tower["start"] = time.perf_counter()

    def post(_m, _a, _o):
        tower["seconds"] += time.perf_counter() - tower["start"]

    for m in (thinker.model.visual, thinker.model.audio_tower):
        m.register_forward_pre_hook(pre)
        m.register_forward_hook(post)

    uaiv = args.audio_in_video == "on" and args.file.lower().endswith(
        (".mp4", ".mkv", ".webm", ".mov", ".avi"))
    content = []
    if args.file:
        ext = os.path.splitext(args.file)[1].lower()
        kind = ("image" if ext in (".png", ".jpg", ".jpeg", ".bmp", ".webp") else
                "audio" if ext in (".wav", ".mp3", ".flac", ".ogg", ".m4a") else "video")
        item = {"type": kind, kind: args.file}
        if kind == "video":
            item["fps"] = args.fps
        content.append(item)
    content.append({"type": "text", "text": args.question})
    conv = [{"role": "user", "content": content}]

    t1 = time.perf_counter()
    text = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    audios, images, videos = process_mm_info(conv, use_audio_in_video=uaiv)
    kw = dict(text=text, audio=audios, images=images, videos=videos, return_tensors="pt",
              padding=True)
    if videos is not None:
        kw["fps"] = args.fps
    if uaiv:
        kw["load_audio_from_video"] = True
        kw["audio_from_video_indices"] = [0]
    inputs = processor(**kw)
    if "pixel_values_videos" in inputs:
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(dtype)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    if "input_features" in inputs:
        inputs["input_features"] = inputs["input_features"].to(dtype)
    processing_s = time.perf_counter() - t1
    prompt_ids = inputs["input_ids"][0].tolist()

    stamps = []  # one per put(): the prompt first, then every generated token

    class Stamps:
        def put(self, value):
            stamps.append(time.perf_counter())
            if len(stamps) == 2:
                stamps_ttft.append(seconds_since_process_start())

        def end(self):
            pass

    stamps_ttft = []
    eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    t2 = time.perf_counter()
    with torch.inference_mode():
        out = thinker.generate(**inputs, use_audio_in_video=uaiv,
                               max_new_tokens=args.max_new_tokens, do_sample=False,
                               eos_token_id=eos, pad_token_id=eos[1], streamer=Stamps(),
                               output_logits=True, return_dict_in_generate=True)
    gen_s = time.perf_counter() - t2
    ids = out.sequences[0, len(prompt_ids):].tolist()
    # Each step's logits; up to the first differing token both programs saw the same prefix, so
    # there this model's logits say how close its choice and the other program's token were.
    steps = [l[0].float() for l in out.logits]
    top2_gaps = [float(v[0] - v[1]) for v in (step.topk(2).values for step in steps)]
    if args.dump_logits:
        from safetensors.torch import save_file
        save_file({"logits": torch.stack(steps).contiguous()}, args.dump_logits,
                  metadata={"ids": json.dumps(ids), "dtype": args.dtype})
    divergence = None
    if args.compare_ids:
        with open(args.compare_ids) as f:
            other = json.load(f)["ids"]
        for i, (a, b) in enumerate(zip(ids, other)):
            if a != b:
                divergence = {"step": i, "id": a, "other_id": b,
                              "logit_gap": float(steps[i][a] - steps[i][b]),
                              "other_rank": int((steps[i] > steps[i][b]).sum())}
                break
    first, last = stamps[1], stamps[-1]
    prefill_s = first - t2 - tower["seconds"]
    decode_s = last - first
    result = {
        "answer": tok.decode(ids, skip_special_tokens=True),
        "ids": ids,
        "prompt_ids": prompt_ids,
        "top2_logit_gaps": top2_gaps,
        "divergence": divergence,
        "audio_in_video": uaiv,
        "dtype": args.dtype,
        "attn_implementation": thinker.config._attn_implementation,
        "threads": torch.get_num_threads(),
        "load_seconds": load_s,
        "processing_seconds": processing_s,
        "tower_seconds": tower["seconds"],
        "prompt_seconds": processing_s + tower["seconds"],
        "generate_seconds": gen_s - tower["seconds"],
        "prefill_seconds": prefill_s,
        "prefill_tokens_per_s": len(prompt_ids) / prefill_s if prefill_s > 0 else 0.0,
        "decode_tokens_per_s": (len(stamps) - 2) / decode_s if decode_s > 0 else 0.0,
        "time_to_first_token_s": stamps_ttft[0] if stamps_ttft else -1,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "python": sys.version.split()[0]},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
