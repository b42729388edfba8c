#!/usr/bin/python3
"""Writes tests/fixtures/e2e/shapes_voices_parity.safetensors: a tiny random shapes & voices model
(same module structure as the demo, small widths), model inputs (preprocessed frames and a log-mel
window) and what the Python reference in ask_batch.py computes from them for each question: the
prompt layout (TMRoPE positions, text ids) and teacher-forced logits over prompt + answer.
tests/examples/ask_batch_test.cpp checks the C++ model against it (no Python needed in CI).

  /usr/bin/python3 bench/python/make_parity_fixture.py [OUT]
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ask_batch as ref  # noqa: E402

CONFIG = {"fps": 2.0, "image_size": 32, "preprocess_mode": "siglip", "n_mels": 80,
          "patch_size": 8, "vit_width": 16, "vit_depth": 1, "vit_heads": 2, "merge": True,
          "audio_width": 16, "audio_depth": 1, "audio_heads": 2, "dim": 32, "layers": 2,
          "heads": 4, "kv_heads": 2, "ffn": 64, "max_answer_tokens": 10}
ANSWERS = ["circle", "green", "blue", "no"]


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    names = {np.float32: "F32", np.int64: "I64"}
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].detach().numpy())
        b = a.tobytes()
        header[name] = {"dtype": names[a.dtype.type], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "..", "tests", "fixtures", "e2e", "shapes_voices_parity.safetensors")
    torch.manual_seed(20261127)
    model = ref.ShapesVoices(CONFIG)
    with torch.no_grad():
        for p in model.parameters():  # larger than default init, so the check has teeth
            p.copy_(torch.randn_like(p) * 0.2)
    model.eval()
    t = {k: v.detach().clone() for k, v in model.state_dict().items()}
    frames = torch.randn(5, 3, 32, 32)
    frame_us = torch.tensor([0, 500000, 1000000, 1500000, 2000000], dtype=torch.int64)
    mel = torch.randn(80, 250) * 0.5
    mel_us = torch.tensor([0], dtype=torch.int64)
    t.update({"in.frames": frames, "in.frame_us": frame_us, "in.mel": mel, "in.mel_us": mel_us})
    with torch.no_grad():
        video, _ = ref.encode(model, list(frames), frame_us.tolist(), [], 0)
        audio = [(0, model.audio(mel))]
        for q, answer in enumerate(ANSWERS):
            items, positions, text_ids = ref.layout(video, audio, list(ref.QUESTIONS[q].encode()))
            ans = list(answer.encode())
            e = ref.embed(model, items + [("ids", torch.tensor(ans))])
            nxt = int(positions.max()) + 1
            extra = torch.arange(nxt, nxt + len(ans), dtype=torch.int64).expand(3, len(ans))
            hidden = model.fusion(e, torch.cat([positions, extra], 1))
            t[f"q{q}.logits"] = model.fusion.logits(hidden[0, positions.shape[1] - 1:])
            t[f"q{q}.positions"] = positions
            t[f"q{q}.text_ids"] = text_ids
            t[f"q{q}.answer_ids"] = torch.tensor(ans, dtype=torch.int64)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_safetensors(out, t, {"config": json.dumps(CONFIG),
                               "made_with": "bench/python/make_parity_fixture.py (torch "
                                            + torch.__version__ + ")"})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
