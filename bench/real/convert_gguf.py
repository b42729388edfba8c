#!/usr/bin/env python3
"""Runs llama.cpp's convert_hf_to_gguf.py on the random-weight Qwen2.5-Omni-3B-shaped checkpoint.

  python bench/real/convert_gguf.py LLAMA_CPP_DIR [convert_hf_to_gguf.py arguments...]

Two things differ from the published model and would stop the converter; both are handled here,
without editing llama.cpp:
- the generated tokenizer (the committed fixture's small BPE plus <unusedN> fillers,
  bench/python/make_qwen_omni_real.py) hashes to no known pre-tokenizer, so the pre-tokenizer
  is set to "qwen2", the one llama.cpp records for the published Qwen2 / Qwen2.5-Omni models
  (token ids, not text, are what the benchmark feeds it);
- the config names the architecture Qwen2_5OmniForConditionalGeneration (what transformers 5
  writes), the published repository Qwen2_5OmniModel: the caller passes a directory whose
  config.json says the latter (scripts/bench-real makes one of symbolic links).
"""
import os
import runpy
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    llama = os.path.abspath(sys.argv[1])
    script = os.path.join(llama, "convert_hf_to_gguf.py")
    if not os.path.isfile(script):
        sys.exit(f"convert_gguf: no convert_hf_to_gguf.py in {llama}")
    sys.path.insert(0, llama)
    sys.path.insert(1, os.path.join(llama, "gguf-py"))
    from conversion import base  # llama.cpp's converter package

    original = base.TextModel.get_vocab_base_pre

    def vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            print("convert_gguf: pre-tokenizer hash unknown (generated tokenizer); using 'qwen2'",
                  file=sys.stderr)
            return "qwen2"

    base.TextModel.get_vocab_base_pre = vocab_base_pre
    sys.argv = [script] + sys.argv[2:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
