#include "fusion/fused_sequence.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace omni {

int64_t FusedPiece::length() const {
  if (ids.defined()) return ids.size(0);
  if (embeddings.defined()) return embeddings.size(0);
  return 0;
}

int64_t FusedSequence::next_position() const {
  if (!positions.defined() || positions.numel() == 0) return 0;
  return positions.max().item<int64_t>() + 1;
}

std::vector<std::pair<int64_t, int64_t>> chunk_by_position(const std::vector<int64_t>& values,
                                                           int64_t per_chunk, int64_t base) {
  // Mirrors HF's get_chunked_index exactly, including its one-chunk-per-token advance across
  // gaps wider than a chunk (which yields single-token chunks there).
  std::vector<std::pair<int64_t, int64_t>> out;
  int64_t start = 0, current = 1;
  const int64_t n = static_cast<int64_t>(values.size());
  for (int64_t i = 0; i < n; ++i) {
    if (values[i] - base >= current * per_chunk) {
      out.emplace_back(start, i);
      start = i;
      ++current;
    }
  }
  out.emplace_back(start, n);
  return out;
}

namespace {

// One token of a media item: which chunk row it is, and its position.
struct TokenRef {
  const TokenChunk* chunk;
  int64_t row;
  int64_t t, h, w;
};

std::string where(const TokenChunk& c) {
  return std::string(modality_name(c.modality)) + " chunk of stream '" + c.stream + "' at " +
         std::to_string(c.start_us) + " us";
}

class Builder {
 public:
  explicit Builder(const SequencerOptions& o) : opts_(o), next_(o.first_position) {}

  void text(const TokenChunk& c) {
    const int64_t n = c.num_tokens();
    if (n == 0) return;
    FusedPiece p;
    p.modality = Modality::kText;
    p.ids = c.ids.defined() ? c.ids.to(at::kCPU, at::kLong).reshape({-1}) : at::Tensor();
    p.embeddings = c.ids.defined() ? at::Tensor() : c.embeddings;
    const int64_t base = next_;  // push() moves next_ along
    for (int64_t i = 0; i < n; ++i) push(Modality::kText, base + i, base + i, base + i);
    add_piece(std::move(p));
  }

  // A boundary token at `pos` (the next free id unless given).
  void boundary(const std::string& name, int64_t id, int64_t pos = -1) {
    if (pos < 0) pos = next_;
    out_.boundaries.emplace_back(length(), name);
    FusedPiece p;
    p.modality = Modality::kText;
    p.ids = at::full({1}, id, at::kLong);
    p.boundary = name;
    push(Modality::kText, pos, pos, pos);
    add_piece(std::move(p));
  }

  // Visual tokens of the chunks, positions relative to `st`, times relative to `t0_us`.
  std::vector<TokenRef> visual(const std::vector<const TokenChunk*>& chunks, int64_t st,
                               int64_t t0_us, bool is_image) const {
    std::vector<TokenRef> refs;
    for (const TokenChunk* c : chunks) {
      const int64_t gt = c->grid_t, gh = c->grid_h, gw = c->grid_w;
      if (gt < 1 || gh < 1 || gw < 1 || gt * gh * gw != c->num_tokens())
        throw InputError("UnifiedSequencer: " + where(*c) + " has grid (" + std::to_string(gt) +
                         ", " + std::to_string(gh) + ", " + std::to_string(gw) + ") but " +
                         std::to_string(c->num_tokens()) + " tokens (expected t*h*w tokens)");
      // Qwen2.5-Omni computes slice times in float32: (k * second_per_grid) * ids_per_second,
      // truncated; images use 1 s per slice. Reproduce that rounding for parity.
      double spg = c->seconds_per_grid;
      if (is_image)
        spg = 1.0;
      else if (spg <= 0)
        spg = double(c->end_us - c->start_us) * 1e-6 / double(gt);
      const double offset = double(c->start_us - t0_us) * opts_.position_ids_per_second * 1e-6;
      for (int64_t k = 0; k < gt; ++k) {
        float slice = static_cast<float>(k) * static_cast<float>(spg);
        slice = slice * static_cast<float>(opts_.position_ids_per_second);
        const auto t = static_cast<int64_t>(std::floor(double(slice) + offset + 1e-9));
        for (int64_t i = 0; i < gh; ++i)
          for (int64_t j = 0; j < gw; ++j)
            refs.push_back({c, (k * gh + i) * gw + j, st + t, st + i, st + j});
      }
    }
    return refs;
  }

  // Audio tokens: consecutive ids, advanced to each chunk's media time, never going back.
  std::vector<TokenRef> audio(const std::vector<const TokenChunk*>& chunks, int64_t st,
                              int64_t t0_us) const {
    std::vector<TokenRef> refs;
    int64_t last = st - 1;
    for (const TokenChunk* c : chunks) {
      const auto base =
          st + static_cast<int64_t>(std::floor(
                   double(c->start_us - t0_us) * opts_.position_ids_per_second * 1e-6 + 1e-9));
      for (int64_t r = 0; r < c->num_tokens(); ++r) {
        const int64_t p = std::max(base + r, last + 1);
        refs.push_back({c, r, p, p, p});
        last = p;
      }
    }
    return refs;
  }

  // Appends tokens refs[a, b) as pieces, one per run of rows of the same chunk.
  void media(const std::vector<TokenRef>& refs, int64_t a, int64_t b) {
    int64_t i = a;
    while (i < b) {
      int64_t j = i + 1;
      while (j < b && refs[j].chunk == refs[i].chunk && refs[j].row == refs[j - 1].row + 1) ++j;
      const TokenChunk& c = *refs[i].chunk;
      FusedPiece p;
      p.modality = c.modality;
      if (c.embeddings.defined())
        p.embeddings = c.embeddings.slice(0, refs[i].row, refs[j - 1].row + 1);
      else
        p.ids =
            c.ids.to(at::kCPU, at::kLong).reshape({-1}).slice(0, refs[i].row, refs[j - 1].row + 1);
      for (int64_t k = i; k < j; ++k) push(c.modality, refs[k].t, refs[k].h, refs[k].w);
      add_piece(std::move(p));
      i = j;
    }
  }

  void item(const SequenceItem& it) {
    const SpecialTokens& sp = opts_.special;
    using K = SequenceItem::Kind;
    if (it.chunks.empty() && it.audio_chunks.empty()) return;
    switch (it.kind) {
      case K::kText:
        for (const TokenChunk* c : it.chunks) text(*c);
        return;
      case K::kImage: {
        boundary("image_start", sp.image_start);
        auto refs = visual(it.chunks, next_, it.chunks.front()->start_us, true);
        media(refs, 0, static_cast<int64_t>(refs.size()));
        boundary("image_end", sp.image_end);
        return;
      }
      case K::kVideo: {
        boundary("video_start", sp.video_start);
        auto refs = visual(it.chunks, next_, it.chunks.front()->start_us, false);
        media(refs, 0, static_cast<int64_t>(refs.size()));
        boundary("video_end", sp.video_end);
        return;
      }
      case K::kAudio: {
        boundary("audio_start", sp.audio_start);
        auto refs = audio(it.chunks, next_, it.chunks.front()->start_us);
        media(refs, 0, static_cast<int64_t>(refs.size()));
        boundary("audio_end", sp.audio_end);
        return;
      }
      case K::kVideoWithAudio: {
        if (it.chunks.empty() || it.audio_chunks.empty()) {
          // Degenerate pairing: lay out whichever half exists on its own.
          SequenceItem single = it;
          single.kind = it.chunks.empty() ? K::kAudio : K::kVideo;
          if (it.chunks.empty()) single.chunks = it.audio_chunks;
          single.audio_chunks.clear();
          item(single);
          return;
        }
        // Both start tokens share one position and both streams number from the next id, on
        // one clock starting at the earlier of the two streams (HF use_audio_in_video).
        const int64_t bos = next_;
        boundary("video_start", sp.video_start, bos);
        boundary("audio_start", sp.audio_start, bos);
        const int64_t st = bos + 1;
        const int64_t t0 = std::min(it.chunks.front()->start_us, it.audio_chunks.front()->start_us);
        auto v = visual(it.chunks, st, t0, false);
        auto a = audio(it.audio_chunks, st, t0);
        std::vector<int64_t> vt, at_;
        for (const auto& r : v) vt.push_back(r.t);
        for (const auto& r : a) at_.push_back(r.t);
        const auto per_chunk =
            static_cast<int64_t>(opts_.position_ids_per_second * opts_.seconds_per_chunk);
        if (per_chunk < 1) throw ConfigError("UnifiedSequencer: seconds_per_chunk x ids/s < 1");
        const auto vc = chunk_by_position(vt, per_chunk, st);
        const auto ac = chunk_by_position(at_, per_chunk, st);
        for (size_t j = 0; j < std::max(vc.size(), ac.size()); ++j) {
          if (j < vc.size()) media(v, vc[j].first, vc[j].second);
          if (j < ac.size()) media(a, ac[j].first, ac[j].second);
        }
        const int64_t eos = next_;
        boundary("audio_end", sp.audio_end, eos);
        boundary("video_end", sp.video_end, eos);
        return;
      }
    }
  }

  FusedSequence finish() {
    const int64_t L = length();
    out_.positions = at::empty({3, L}, at::kLong);
    auto acc = out_.positions.accessor<int64_t, 2>();
    for (int64_t i = 0; i < L; ++i) {
      acc[0][i] = t_[i];
      acc[1][i] = h_[i];
      acc[2][i] = w_[i];
    }
    out_.text_ids = at::full({L}, -1, at::kLong);
    for (const auto& p : out_.pieces) {
      if (p.ids.defined()) out_.text_ids.slice(0, p.offset, p.offset + p.length()).copy_(p.ids);
      const std::string key = !p.boundary.empty() ? "boundary" : modality_name(p.modality);
      out_.tokens[key] += p.length();
    }
    return std::move(out_);
  }

 private:
  int64_t length() const { return static_cast<int64_t>(out_.modality.size()); }
  void push(Modality m, int64_t t, int64_t h, int64_t w) {
    out_.modality.push_back(m);
    t_.push_back(t);
    h_.push_back(h);
    w_.push_back(w);
    next_ = std::max({next_, t + 1, h + 1, w + 1});
  }
  void add_piece(FusedPiece p) {
    p.offset = length() - p.length();
    out_.pieces.push_back(std::move(p));
  }

  const SequencerOptions& opts_;
  int64_t next_;
  FusedSequence out_;
  std::vector<int64_t> t_, h_, w_;
};

}  // namespace

FusedSequence build_fused_sequence(const std::vector<SequenceItem>& items,
                                   const SequencerOptions& opts) {
  Builder b(opts);
  for (const auto& it : items) b.item(it);
  FusedSequence s = b.finish();
  s.start_us = INT64_MAX;
  s.end_us = INT64_MIN;
  for (const auto& it : items) {
    for (const auto* list : {&it.chunks, &it.audio_chunks})
      for (const TokenChunk* c : *list) {
        s.start_us = std::min(s.start_us, c->start_us);
        s.end_us = std::max(s.end_us, c->end_us);
      }
  }
  if (s.start_us > s.end_us) s.start_us = s.end_us = 0;
  return s;
}

// The debug dump of a sequence: per token modality (boundary tokens by name), t/h/w, text ids.
void PayloadJson<FusedSequence>::encode(const FusedSequence& s, nlohmann::json& j) {
  j["segment"] = s.segment;
  j["length"] = s.length();
  j["start_us"] = s.start_us;
  j["end_us"] = s.end_us;
  j["next_position"] = s.next_position();
  j["tokens"] = s.tokens;
  j["truncated"] = s.truncated;
  nlohmann::json b = nlohmann::json::array();
  for (const auto& [i, name] : s.boundaries) b.push_back({{"index", i}, {"name", name}});
  j["boundaries"] = b;
  std::vector<std::string> mod;
  mod.reserve(s.modality.size());
  for (Modality m : s.modality) mod.push_back(modality_name(m));
  for (const auto& [i, name] : s.boundaries) mod[static_cast<size_t>(i)] = name;
  j["modality"] = mod;  // per token; boundary tokens by name
  if (s.positions.defined()) {
    const at::Tensor p = s.positions.to(at::kCPU, at::kLong).contiguous();
    const int64_t L = p.size(1);
    const int64_t* d = p.data_ptr<int64_t>();
    j["t"] = std::vector<int64_t>(d, d + L);
    j["h"] = std::vector<int64_t>(d + L, d + 2 * L);
    j["w"] = std::vector<int64_t>(d + 2 * L, d + 3 * L);
  }
  if (s.text_ids.defined()) {
    const at::Tensor t = s.text_ids.to(at::kCPU, at::kLong).contiguous();
    j["text_ids"] = std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  }
}

}  // namespace omni
