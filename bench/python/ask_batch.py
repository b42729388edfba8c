#!/usr/bin/python3
"""The shapes & voices batch job written the way a researcher would in Python.

PyAV decodes each clip, PIL/numpy preprocess the frames (SigLIP-style resize + normalise), torch.stft
computes Whisper's log-mel, and the demo model (ViT, audio encoder, fusion transformer with TMRoPE)
is defined here in plain PyTorch and loaded from the same model.safetensors the C++ program uses.
Every (clip, question) pair of a make_clips manifest is answered; answers go to JSON lines.

  ask_batch.py --manifest clips/manifest.jsonl --out answers.jsonl [--model models/shapes_voices]
  ask_batch.py --compare DUMP.safetensors [--model ...]   # logits parity with the C++ model

Uses only Debian packages (python3-torch, python3-av, python3-numpy, python3-pil); the safetensors
file is read with json + numpy. Architecture numbers come from config.json, never from here.
"""
import argparse
import json
import math
import os
import struct
import sys
import time
from fractions import Fraction

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

QUESTIONS = ["what shape is it?", "what color is the shape?", "which color was spoken?",
             "does the spoken color match the shape?"]
QUESTION_KEYS = ["shape", "color", "spoken", "match"]
NEEDS_AUDIO = [False, False, True, True]
# The byte tokenizer's special ids (fusion/fused_sequence.h SpecialTokens).
EOS, IMAGE_START, IMAGE_END, AUDIO_START, AUDIO_END, VIDEO_START, VIDEO_END = (
    258, 259, 260, 261, 262, 263, 264)
VOCAB = 272
POSITION_IDS_PER_SECOND = 25.0
SECONDS_PER_CHUNK = 2.0


# ---------------------------------------------------------------------------------------------
# safetensors (json header + raw little-endian arrays)

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "U8": np.uint8, "I8": np.int8, "BOOL": np.bool_}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(data, dtype=_DTYPES[info["dtype"]], count=(e - b) // np.dtype(
            _DTYPES[info["dtype"]]).itemsize, offset=base + b)
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


# ---------------------------------------------------------------------------------------------
# the model (mirrors modalities/image/vit.cpp, modalities/audio/audio_encoder.cpp,
# modalities/common/encoder_block.cpp, fusion/transformer.cpp)

class EncoderBlock(torch.nn.Module):
    def __init__(self, d, heads, mlp_ratio=4):
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(d, eps=1e-5)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.norm2 = torch.nn.LayerNorm(d, eps=1e-5)
        self.fc1 = torch.nn.Linear(d, d * mlp_ratio)
        self.fc2 = torch.nn.Linear(d * mlp_ratio, d)

    def forward(self, x):
        b, l, d = x.shape
        h = self.heads
        t = self.qkv(self.norm1(x)).view(b, l, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = t[0], t[1], t[2]
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(d // h))
        a = torch.matmul(torch.softmax(scores, -1), v)
        y = x + self.proj(a.transpose(1, 2).reshape(b, l, d))
        return y + self.fc2(F.gelu(self.fc1(self.norm2(y))))


class ViT(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, p = c["vit_width"], c["patch_size"]
        self.p, self.d, self.merge = p, d, c["merge"]
        self.g = c["image_size"] // p
        self.patch_embed = torch.nn.Conv2d(3, d, p, stride=p)
        self.pos_embed = torch.nn.Parameter(torch.zeros(self.g * self.g, d))
        self.blocks = torch.nn.ModuleList(EncoderBlock(d, c["vit_heads"])
                                          for _ in range(c["vit_depth"]))
        self.norm = torch.nn.LayerNorm(d)
        if self.merge:
            self.merge_fc1 = torch.nn.Linear(4 * d, 4 * d)
            self.merge_fc2 = torch.nn.Linear(4 * d, c["dim"])
        else:
            self.proj = torch.nn.Linear(d, c["dim"])

    def grid(self, h, w):
        unit = 2 * self.p if self.merge else self.p
        return h // unit, w // unit

    def forward(self, images):
        b, _, hh, ww = images.shape
        gh, gw, d = hh // self.p, ww // self.p, self.d
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        pos = self.pos_embed
        if (gh, gw) != (self.g, self.g):
            t = pos.reshape(1, self.g, self.g, d).permute(0, 3, 1, 2)
            t = F.interpolate(t, size=(gh, gw), mode="bicubic", align_corners=False)
            pos = t.permute(0, 2, 3, 1).reshape(gh * gw, d)
        x = x + pos.unsqueeze(0)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        if not self.merge:
            return self.proj(x)
        x = x.view(b, gh // 2, 2, gw // 2, 2, d).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(b, (gh // 2) * (gw // 2), 4 * d)
        return self.merge_fc2(F.gelu(self.merge_fc1(x)))


def whisper_sinusoids(length, channels):
    inc = math.log(10000.0) / (channels // 2 - 1)
    inv = torch.exp(torch.arange(channels // 2, dtype=torch.float64) * -inc)
    scaled = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([scaled.sin(), scaled.cos()], 1).float()


class AudioEncoder(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["audio_width"]
        self.d = d
        self.conv1 = torch.nn.Conv1d(c["n_mels"], d, 3, padding=1)
        self.conv2 = torch.nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.blocks = torch.nn.ModuleList(EncoderBlock(d, c["audio_heads"])
                                          for _ in range(c["audio_depth"]))
        self.norm = torch.nn.LayerNorm(d)
        self.proj = torch.nn.Linear(d, c["dim"])

    def forward(self, mel):  # [n_mels, T] -> [N, dim]
        x = F.gelu(self.conv1(mel[None]))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + whisper_sinusoids(x.shape[1], self.d)[None]
        for blk in self.blocks:
            x = blk(x)
        x = F.avg_pool1d(x.transpose(1, 2), 2, 2, 0, ceil_mode=True,
                         count_include_pad=True).transpose(1, 2)
        return self.proj(self.norm(x))[0]


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class FusionBlock(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.h, self.kv = c["dim"], c["heads"], c["kv_heads"]
        self.hd = d // self.h
        self.attn_norm, self.mlp_norm = RMSNorm(d), RMSNorm(d)
        self.q_proj = torch.nn.Linear(d, self.h * self.hd, bias=False)
        self.k_proj = torch.nn.Linear(d, self.kv * self.hd, bias=False)
        self.v_proj = torch.nn.Linear(d, self.kv * self.hd, bias=False)
        self.o_proj = torch.nn.Linear(self.h * self.hd, d, bias=False)
        f = c["ffn"] if c["ffn"] > 0 else ((8 * d // 3 + 63) // 64) * 64
        self.gate_proj = torch.nn.Linear(d, f, bias=False)
        self.up_proj = torch.nn.Linear(d, f, bias=False)
        self.down_proj = torch.nn.Linear(f, d, bias=False)

    @staticmethod
    def rotate(x, cos, sin):
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * cos[:, None] + rotated * sin[:, None]

    def forward(self, x, cos, sin, cache):
        b, l, _ = x.shape
        hn = self.attn_norm(x)
        q = self.q_proj(hn).view(b, l, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(hn).view(b, l, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(hn).view(b, l, self.kv, self.hd).transpose(1, 2)
        q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], 2)
                v = torch.cat([cache[1], v], 2)
            cache[0], cache[1] = k, v
        if self.kv != self.h:
            k = k.repeat_interleave(self.h // self.kv, 1)
            v = v.repeat_interleave(self.h // self.kv, 1)
        lq, lk = q.shape[-2], k.shape[-2]
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        mask = torch.ones(lq, lk, dtype=torch.bool).tril(lk - lq)
        scores = scores.masked_fill(~mask, float("-inf"))
        a = torch.matmul(torch.softmax(scores, -1), v)
        out = x + self.o_proj(a.transpose(1, 2).reshape(b, l, self.h * self.hd))
        m = self.mlp_norm(out)
        return out + self.down_proj(F.silu(self.gate_proj(m)) * self.up_proj(m))


class Fusion(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.tok_embeddings = torch.nn.Embedding(VOCAB, c["dim"])
        self.blocks = torch.nn.ModuleList(FusionBlock(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["dim"])
        hd = c["dim"] // c["heads"]
        half = hd // 2
        t = half // 4
        h = (half - t) // 2
        self.sections = [t, h, half - t - h]
        self.inv_freq = (10000.0 ** (-torch.arange(0, half, dtype=torch.float64) * 2.0 / hd)).float()

    def tables(self, positions):  # [3, L] int64 -> cos/sin [1, L, hd]
        pos = positions.float()
        parts, begin = [], 0
        for axis, n in enumerate(self.sections):
            if n:
                parts.append(pos[axis][:, None] * self.inv_freq[begin:begin + n])
                begin += n
        freqs = torch.cat(parts, -1)
        emb = torch.cat([freqs, freqs], -1)[None]
        return emb.cos(), emb.sin()

    def forward(self, embeds, positions, cache=None):
        cos, sin = self.tables(positions)
        x = embeds
        for i, blk in enumerate(self.blocks):
            x = blk(x, cos, sin, cache[i] if cache is not None else None)
        return self.norm(x)

    def logits(self, hidden):
        return hidden @ self.tok_embeddings.weight.t()


class ShapesVoices(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.vision, self.audio, self.fusion = ViT(c), AudioEncoder(c), Fusion(c)


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    model = ShapesVoices(config)
    weights = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        sys.exit(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
    model.eval()
    return model, config


# ---------------------------------------------------------------------------------------------
# decoding and preprocessing

def rescale_us(pts, time_base):
    v = Fraction(pts) * Fraction(time_base) * 1000000
    return int(math.floor(v + Fraction(1, 2))) if v >= 0 else -int(math.floor(-v + Fraction(1, 2)))


def decode_clip(path, fps):
    """RGB frames sampled at `fps` and 16 kHz mono PCM, timestamps relative to the container."""
    frames, frame_us = [], []
    pcm, audio_start_us = [], None
    with av.open(path) as container:
        base = container.start_time or 0
        has_audio = len(container.streams.audio) > 0
        streams = [s for s in (container.streams.video[:1] + container.streams.audio[:1])]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        next_sample, last_video = -(2 ** 62), -(2 ** 62)
        origin, produced = None, 0
        for packet in container.demux(streams):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    ts = rescale_us(frame.pts, frame.time_base) - base
                    if ts < 0 or ts <= last_video or ts < next_sample:
                        continue
                    k = math.floor(ts * fps / 1e6) + 1
                    next_sample = int(math.ceil(k * 1e6 / fps))
                    last_video = ts
                    frames.append(frame.to_ndarray(format="rgb24"))
                    frame_us.append(ts)
                else:
                    if origin is None:
                        origin = rescale_us(frame.pts, frame.time_base) - base
                    for out in resampler.resample(frame):
                        pcm.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            pcm.append(out.to_ndarray().reshape(-1))
    samples = np.concatenate(pcm).astype(np.float32) if pcm else np.zeros(0, np.float32)
    if origin is not None and len(samples):
        # Samples before the container start (codec priming) are dropped, as MediaReader does.
        times = origin + np.floor(np.arange(len(samples)) * 1000000 / 16000 + 0.5).astype(np.int64)
        keep = times >= 0
        first = int(np.argmax(keep)) if keep.any() else len(samples)
        samples = samples[first:]
        audio_start_us = int(times[first]) if first < len(times) else 0
    return frames, frame_us, samples, audio_start_us, has_audio


def preprocess_frame(rgb, size):
    img = Image.fromarray(rgb).resize((size, size), Image.BICUBIC)
    x = np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def slaney_mel_filters(sr=16000, n_fft=400, n_mels=80):
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0

    def hz_to_mel(f):
        return min_log_mel + math.log(f / min_log_hz) / logstep if f >= min_log_hz else f / f_sp

    mels = np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2)
    mel_f = np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)),
                     f_sp * mels)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return torch.from_numpy(weights)


_MEL = {}


def log_mel(samples, n_mels, window_frames=3000):
    """Whisper's log_mel_spectrogram of the whole signal, cut into windows normalised alone."""
    if n_mels not in _MEL:
        _MEL[n_mels] = slaney_mel_filters(n_mels=n_mels)
    x = torch.from_numpy(samples)
    stft = torch.stft(x, 400, 160, window=torch.hann_window(400), center=True,
                      pad_mode="reflect", return_complex=True)
    power = stft[..., :-1].abs() ** 2
    raw = torch.clamp(_MEL[n_mels] @ power, min=1e-10).log10()
    out = []
    for first in range(0, raw.shape[1], window_frames):
        w = raw[:, first:first + window_frames]
        w = torch.maximum(w, w.max() - 8.0)
        out.append(((w + 4.0) / 4.0, first))
    return out


# ---------------------------------------------------------------------------------------------
# the prompt layout (fusion/fused_sequence.cpp, SegmentAssembler defaults: media, then text)

def chunk_by_position(values, per_chunk, base):
    out, start, current = [], 0, 1
    for i, v in enumerate(values):
        if v - base >= current * per_chunk:
            out.append((start, i))
            start = i
            current += 1
    out.append((start, len(values)))
    return out


def layout(video, audio, question_ids):
    """video: [(start_us, emb [gh*gw, d], gh, gw)], audio: [(start_us, emb [n, d])].
    Returns (items, positions [3, L], text_ids [L]) where items are ("ids", tensor) or
    ("emb", tensor) in sequence order."""
    items, pos = [], []
    nxt = [0]

    def push(t, h, w):
        pos.append((t, h, w))
        nxt[0] = max(nxt[0], t + 1, h + 1, w + 1)

    def boundary(token, p=None):
        p = nxt[0] if p is None else p
        items.append(("ids", torch.tensor([token])))
        push(p, p, p)

    def visual(st, t0):
        refs = []
        for ci, (start, emb, gh, gw) in enumerate(video):
            t = math.floor((start - t0) * POSITION_IDS_PER_SECOND * 1e-6 + 1e-9)
            for i in range(gh):
                for j in range(gw):
                    refs.append((ci, i * gw + j, st + t, st + i, st + j))
        return refs

    def audio_refs(st, t0):
        refs, last = [], st - 1
        for ci, (start, emb) in enumerate(audio):
            base = st + math.floor((start - t0) * POSITION_IDS_PER_SECOND * 1e-6 + 1e-9)
            for r in range(emb.shape[0]):
                p = max(base + r, last + 1)
                refs.append((ci, r, p, p, p))
                last = p
        return refs

    def media(refs, src, a, b):
        i = a
        while i < b:
            j = i + 1
            while j < b and refs[j][0] == refs[i][0] and refs[j][1] == refs[j - 1][1] + 1:
                j += 1
            emb = src[refs[i][0]][1]
            items.append(("emb", emb[refs[i][1]:refs[j - 1][1] + 1]))
            for k in range(i, j):
                push(*refs[k][2:])
            i = j

    if video and audio:
        bos = nxt[0]
        boundary(VIDEO_START, bos)
        boundary(AUDIO_START, bos)
        st = bos + 1
        t0 = min(video[0][0], audio[0][0])
        v, a = visual(st, t0), audio_refs(st, t0)
        per_chunk = int(POSITION_IDS_PER_SECOND * SECONDS_PER_CHUNK)
        vc = chunk_by_position([r[2] for r in v], per_chunk, st)
        ac = chunk_by_position([r[2] for r in a], per_chunk, st)
        for j in range(max(len(vc), len(ac))):
            if j < len(vc):
                media(v, video, *vc[j])
            if j < len(ac):
                media(a, audio, *ac[j])
        eos = nxt[0]
        boundary(AUDIO_END, eos)
        boundary(VIDEO_END, eos)
    elif video:
        boundary(VIDEO_START)
        v = visual(nxt[0], video[0][0])
        media(v, video, 0, len(v))
        boundary(VIDEO_END)
    elif audio:
        boundary(AUDIO_START)
        a = audio_refs(nxt[0], audio[0][0])
        media(a, audio, 0, len(a))
        boundary(AUDIO_END)
    base = nxt[0]
    items.append(("ids", torch.tensor(question_ids)))
    for i in range(len(question_ids)):
        push(base + i, base + i, base + i)
    positions = torch.tensor(pos, dtype=torch.int64).t().contiguous()
    text_ids = []
    for kind, t in items:
        text_ids += t.tolist() if kind == "ids" else [-1] * t.shape[0]
    return items, positions, torch.tensor(text_ids, dtype=torch.int64)


def embed(model, items):
    parts = [model.fusion.tok_embeddings(t) if kind == "ids" else t for kind, t in items]
    return torch.cat(parts, 0)[None]


def greedy(model, embeds, positions, max_new):
    fusion = model.fusion
    cache = [[None, None] for _ in fusion.blocks]
    hidden = fusion(embeds, positions, cache)
    nxt = int(positions.max()) + 1
    tokens, logits = [], []
    last = hidden[:, -1]
    for i in range(max_new):
        lg = fusion.logits(last)[0]
        logits.append(lg)
        tok = int(lg.argmax())
        if tok == EOS:
            break
        tokens.append(tok)
        if i + 1 == max_new:
            break
        e = fusion.tok_embeddings(torch.tensor([[tok]]))
        p = torch.full((3, 1), nxt, dtype=torch.int64)
        nxt += 1
        last = fusion(e, p, cache)[:, 0]
    return tokens, logits


def encode(model, frames, frame_us, mels, audio_start_us):
    video, audio = [], []
    if frames:
        x = torch.stack(frames)
        emb = model.vision(x)
        gh, gw = model.vision.grid(x.shape[2], x.shape[3])
        video = [(frame_us[i], emb[i], gh, gw) for i in range(len(frames))]
    for mel, first in mels:
        if mel.shape[1] > 0:
            audio.append((audio_start_us + first * 10000, model.audio(mel)))
    return video, audio


def answer(model, config, video, audio, q):
    items, positions, _ = layout(video, audio, list(QUESTIONS[q].encode()))
    tokens, _ = greedy(model, embed(model, items), positions, config["max_answer_tokens"])
    return bytes(t for t in tokens if t < 256).decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------

def run_manifest(args):
    model, config = load_model(args.model)
    mdir = os.path.dirname(os.path.abspath(args.manifest))
    with open(args.manifest) as f:
        lines = [ln for ln in f.read().splitlines()]
    records, clips, t0 = [], 0, time.perf_counter()
    with torch.no_grad():
        for n, text in enumerate(lines, 1):
            if not text.strip():
                continue
            if args.limit and clips >= args.limit:
                break
            clips += 1
            try:
                entry = json.loads(text)
                questions = [q for q in range(4) if "question" not in entry or
                             entry["question"] in (QUESTIONS[q], QUESTION_KEYS[q])]
                path = os.path.join(mdir, entry["file"])
                frames, frame_us, pcm, audio_us, has_audio = decode_clip(path, config["fps"])
                pre = [preprocess_frame(fr, config["image_size"]) for fr in frames]
                mels = log_mel(pcm, config["n_mels"]) if len(pcm) > 200 else []
                video, audio = encode(model, pre, frame_us, mels, audio_us)
                for q in questions:
                    r = {"line": n, "file": entry["file"], "question": QUESTIONS[q]}
                    if NEEDS_AUDIO[q] and not has_audio:
                        r["error"] = "the clip has no audio track"
                    else:
                        r["answer"] = answer(model, config, video, audio, q)
                        if QUESTION_KEYS[q] in entry:
                            r["expected"] = entry[QUESTION_KEYS[q]]
                            r["correct"] = r["answer"] == entry[QUESTION_KEYS[q]]
                    records.append(r)
            except Exception as e:  # one error record, like the C++ batch mode
                records.append({"line": n, "question": None, "error": str(e)})
    seconds = time.perf_counter() - t0
    out = open(args.out, "w") if args.out != "-" else sys.stdout
    for r in records:
        out.write(json.dumps(r) + "\n")
    if out is not sys.stdout:
        out.close()
    summary = {"clips": clips, "pairs": len(records), "seconds": seconds,
               "clips_per_s": clips / seconds if seconds > 0 else 0.0,
               "torch_threads": torch.get_num_threads()}
    print(json.dumps(summary), file=sys.stderr)
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f)


def compare(args):
    """Loads the C++ dump (bench/e2e: e2e_bench dump) and checks this model against it."""
    model, config = load_model(args.model)
    d = read_safetensors(args.compare)
    frames = [d["frames"][i] for i in range(d["frames"].shape[0])] if "frames" in d else []
    frame_us = d["frame_us"].tolist() if "frame_us" in d else []
    mels = [(d[f"mel.{i}"], 0) for i in range(d["mel_us"].shape[0])] if "mel_us" in d else []
    mel_us = d["mel_us"].tolist() if "mel_us" in d else []
    worst, ok = 0.0, True
    with torch.no_grad():
        video, _ = encode(model, frames, frame_us, [], 0)
        audio = [(mel_us[i], model.audio(m)) for i, (m, _) in enumerate(mels)]
        for q in range(4):
            if f"q{q}.logits" not in d:
                continue
            items, positions, text_ids = layout(video, audio, list(QUESTIONS[q].encode()))
            if not torch.equal(positions, d[f"q{q}.positions"]) or not torch.equal(
                    text_ids, d[f"q{q}.text_ids"]):
                print(f"q{q}: layout differs from the C++ sequencer", file=sys.stderr)
                ok = False
                continue
            ans = d[f"q{q}.answer_ids"].tolist()
            # Teacher-forced: the prompt plus the C++ answer, logits at the last len(ans)+1 rows.
            e = embed(model, items + [("ids", torch.tensor(ans, dtype=torch.int64))])
            nxt = int(positions.max()) + 1
            extra = torch.arange(nxt, nxt + len(ans), dtype=torch.int64).expand(3, len(ans))
            hidden = model.fusion(e, torch.cat([positions, extra], 1))
            logits = model.fusion.logits(hidden[0, positions.shape[1] - 1:])
            diff = float((logits - d[f"q{q}.logits"]).abs().max())
            tokens, _ = greedy(model, embed(model, items), positions, config["max_answer_tokens"])
            same = tokens == ans
            worst = max(worst, diff)
            print(f"q{q}: max |logit diff| {diff:.3g} over {tuple(logits.shape)}, answer "
                  f"{'same' if same else 'DIFFERENT'}", file=sys.stderr)
            ok = ok and same and diff <= args.tol
        if args.clip:
            fr, fus, pcm, aus, _ = decode_clip(args.clip, config["fps"])
            pre = [preprocess_frame(f, config["image_size"]) for f in fr]
            if len(pre) == len(frames) and fus == frame_us:
                dx = max(float((a - b).abs().max()) for a, b in zip(pre, frames))
                print(f"python decode+preprocess vs C++: frames max |diff| {dx:.3g}",
                      file=sys.stderr)
            else:
                print(f"python decode gave frames at {fus}, C++ at {frame_us}", file=sys.stderr)
            pm = log_mel(pcm, config["n_mels"]) if len(pcm) > 200 else []
            if len(pm) == len(mels) and all(a.shape == b.shape for (a, _), (b, _) in zip(pm, mels)):
                dm = max([float((a - b).abs().max()) for (a, _), (b, _) in zip(pm, mels)] + [0.0])
                print(f"python log-mel vs C++: max |diff| {dm:.3g}; audio start {aus} us vs "
                      f"{mel_us[0] if mel_us else None}", file=sys.stderr)
            else:
                print("python log-mel windows differ in shape from C++", file=sys.stderr)
    print(json.dumps({"max_abs_logit_diff": worst, "tolerance": args.tol, "ok": ok}))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--model", default=os.path.join(here, "..", "..", "models", "shapes_voices"))
    ap.add_argument("--manifest")
    ap.add_argument("--out", default="-")
    ap.add_argument("--summary")
    ap.add_argument("--limit", type=int, default=0, help="at most this many clips")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--compare", help="a C++ dump (e2e_bench dump) to check logits against")
    ap.add_argument("--clip", help="with --compare: also decode this clip here and compare inputs")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.compare:
        return compare(args)
    if not args.manifest:
        ap.error("--manifest or --compare is required")
    run_manifest(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
