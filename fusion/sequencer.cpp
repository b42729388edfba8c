#include "fusion/sequencer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/contract.h"
#include "core/error.h"

namespace omni {

void SequencerConfig::validate() const {
  if (segment_s < 0) throw ConfigError("UnifiedSequencer: segment_s must be >= 0");
  if (text_position != "after" && text_position != "before" && text_position != "time")
    throw ConfigError("UnifiedSequencer: text_position must be after, before or time, got '" +
                      text_position + "'");
  if (layout.position_ids_per_second <= 0 || layout.seconds_per_chunk <= 0)
    throw ConfigError("UnifiedSequencer: position_ids_per_second and chunk_s must be > 0");
  for (int64_t b : {max_tokens, max_text, max_image, max_video, max_audio})
    if (b < 0) throw ConfigError("UnifiedSequencer: token budgets must be >= 0 (0 = unlimited)");
  if (prompt_per_text && segment_s > 0)
    throw ConfigError("UnifiedSequencer: prompt_per_text needs the whole input (segment_s 0)");
}

SegmentAssembler::SegmentAssembler(SequencerConfig cfg) : cfg_(std::move(cfg)) {
  cfg_.validate();
  next_position_ = cfg_.layout.first_position;
}

void SegmentAssembler::add(TokenChunk c) {
  int64_t w = 0;
  if (cfg_.segment_s > 0)
    w = static_cast<int64_t>(std::floor(double(c.start_us) / (cfg_.segment_s * 1e6)));
  windows_[w].push_back(std::move(c));
}

std::vector<FusedSequence> SegmentAssembler::take_ready(int64_t watermark_us) {
  std::vector<FusedSequence> out;
  if (cfg_.segment_s <= 0) return out;
  while (!windows_.empty()) {
    auto it = windows_.begin();
    const double end_us = double(it->first + 1) * cfg_.segment_s * 1e6;
    if (end_us > double(watermark_us)) break;
    std::vector<TokenChunk> chunks = std::move(it->second);
    windows_.erase(it);
    out.push_back(assemble(std::move(chunks), next_segment_++, next_position_));
    if (cfg_.continue_positions) next_position_ = out.back().next_position();
  }
  return out;
}

std::vector<FusedSequence> SegmentAssembler::finish() {
  std::vector<FusedSequence> out;
  if (cfg_.prompt_per_text) {  // whole input: windows_ holds window 0 only
    std::vector<TokenChunk> media, texts;
    for (auto& [w, chunks] : windows_)
      for (auto& c : chunks)
        (c.modality == Modality::kText ? texts : media).push_back(std::move(c));
    const bool any = !windows_.empty();
    windows_.clear();
    if (!any) return out;
    if (texts.empty()) out.push_back(assemble(std::move(media), 0, next_position_));
    for (auto& t : texts) {
      std::vector<TokenChunk> chunks = media;
      chunks.push_back(std::move(t));
      out.push_back(assemble(std::move(chunks), 0, next_position_));
    }
    return out;
  }
  for (auto& [w, chunks] : windows_) {
    out.push_back(assemble(std::move(chunks), next_segment_++, next_position_));
    if (cfg_.continue_positions) next_position_ = out.back().next_position();
  }
  windows_.clear();
  return out;
}

namespace {

// The first n tokens of a sequence (n <= its length).
FusedSequence first_tokens(const FusedSequence& s, int64_t n) {
  FusedSequence out;
  for (const FusedPiece& p : s.pieces) {
    if (p.offset >= n) break;
    FusedPiece q = p;
    const int64_t k = std::min(p.length(), n - p.offset);
    if (q.ids.defined()) q.ids = q.ids.slice(0, 0, k);
    if (q.embeddings.defined()) q.embeddings = q.embeddings.slice(0, 0, k);
    out.pieces.push_back(std::move(q));
  }
  out.positions = s.positions.slice(1, 0, n);
  out.modality.assign(s.modality.begin(), s.modality.begin() + n);
  for (const auto& b : s.boundaries)
    if (b.first < n) out.boundaries.push_back(b);
  out.text_ids = s.text_ids.slice(0, 0, n);
  out.segment = s.segment;
  out.start_us = s.start_us;
  out.end_us = s.end_us;
  const auto boundaries = static_cast<int64_t>(out.boundaries.size());
  for (Modality m : out.modality) ++out.tokens[modality_name(m)];
  if (boundaries > 0) {
    out.tokens["boundary"] = boundaries;
    if ((out.tokens["text"] -= boundaries) == 0) out.tokens.erase("text");
  }
  return out;
}

int64_t budget_of(const SequencerConfig& c, Modality m) {
  switch (m) {
    case Modality::kText:
      return c.max_text;
    case Modality::kImage:
      return c.max_image;
    case Modality::kVideo:
      return c.max_video;
    case Modality::kAudio:
      return c.max_audio;
  }
  return 0;
}

// Keeps the first `n` tokens of a chunk (audio rows, text ids); visual chunks are all or nothing.
TokenChunk keep_first(const TokenChunk& c, int64_t n) {
  TokenChunk out = c;
  if (out.embeddings.defined()) out.embeddings = out.embeddings.slice(0, 0, n);
  if (out.ids.defined()) out.ids = out.ids.reshape({-1}).slice(0, 0, n);
  if (c.modality == Modality::kAudio || c.modality == Modality::kText) {
    out.grid_t = out.grid_h = 1;
    out.grid_w = n;
    if (c.num_tokens() > 0 && c.end_us > c.start_us)
      out.end_us = c.start_us + (c.end_us - c.start_us) * n / c.num_tokens();
  }
  return out;
}

bool divisible(Modality m) { return m == Modality::kAudio || m == Modality::kText; }

std::string clip_key(const std::string& stream) {
  const auto slash = stream.rfind('/');
  return slash == std::string::npos ? stream : stream.substr(0, slash);
}

}  // namespace

FusedSequence SegmentAssembler::assemble(std::vector<TokenChunk> chunks, int64_t segment,
                                         int64_t first_position) {
  std::stable_sort(chunks.begin(), chunks.end(), [](const TokenChunk& a, const TokenChunk& b) {
    return a.start_us < b.start_us;
  });
  std::map<std::string, int64_t> dropped;
  // Per-modality budgets: keep the earliest tokens.
  for (Modality m : {Modality::kText, Modality::kImage, Modality::kVideo, Modality::kAudio}) {
    const int64_t budget = budget_of(cfg_, m);
    if (budget <= 0) continue;
    int64_t used = 0;
    std::vector<TokenChunk> kept;
    for (auto& c : chunks) {
      if (c.modality != m) {
        kept.push_back(std::move(c));
        continue;
      }
      const int64_t n = c.num_tokens();
      if (used + n <= budget) {
        used += n;
        kept.push_back(std::move(c));
      } else if (divisible(m) && used < budget) {
        const int64_t k = budget - used;
        dropped[modality_name(m)] += n - k;
        used = budget;
        kept.push_back(keep_first(c, k));
      } else {
        dropped[modality_name(m)] += n;
      }
    }
    chunks = std::move(kept);
  }

  auto layout = [&](const std::vector<TokenChunk>& cs) {
    std::vector<SequenceItem> text, media;
    std::map<std::string, std::vector<const TokenChunk*>> video, audio;
    std::vector<std::string> video_order, audio_order;
    for (const auto& c : cs) {
      if (c.num_tokens() == 0) continue;
      switch (c.modality) {
        case Modality::kText:
          text.push_back({SequenceItem::Kind::kText, {&c}, {}});
          break;
        case Modality::kImage:
          media.push_back({SequenceItem::Kind::kImage, {&c}, {}});
          break;
        case Modality::kVideo:
          if (!video.count(c.stream)) video_order.push_back(c.stream);
          video[c.stream].push_back(&c);
          break;
        case Modality::kAudio:
          if (!audio.count(c.stream)) audio_order.push_back(c.stream);
          audio[c.stream].push_back(&c);
          break;
      }
    }
    // Pair each video stream with the audio stream of the same clip (same stream prefix), or
    // the only video with the only audio.
    std::map<std::string, std::string> pair;  // video stream -> audio stream
    if (cfg_.pair_audio_video) {
      std::set<std::string> used;
      for (const auto& v : video_order)
        for (const auto& a : audio_order)
          if (!used.count(a) && clip_key(v) == clip_key(a)) {
            pair[v] = a;
            used.insert(a);
            break;
          }
      if (pair.empty() && video_order.size() == 1 && audio_order.size() == 1)
        pair[video_order[0]] = audio_order[0];
    }
    std::set<std::string> paired_audio;
    for (const auto& [v, a] : pair) paired_audio.insert(a);
    for (const auto& v : video_order) {
      if (pair.count(v))
        media.push_back({SequenceItem::Kind::kVideoWithAudio, video[v], audio[pair[v]]});
      else
        media.push_back({SequenceItem::Kind::kVideo, video[v], {}});
    }
    for (const auto& a : audio_order)
      if (!paired_audio.count(a)) media.push_back({SequenceItem::Kind::kAudio, audio[a], {}});
    auto start = [](const SequenceItem& it) {
      int64_t s = INT64_MAX;
      for (const auto* l : {&it.chunks, &it.audio_chunks})
        for (const TokenChunk* c : *l) s = std::min(s, c->start_us);
      return s;
    };
    std::stable_sort(media.begin(), media.end(), [&](const SequenceItem& a, const SequenceItem& b) {
      return start(a) < start(b);
    });
    std::vector<SequenceItem> items;
    if (cfg_.text_position == "before") {
      items = text;
      items.insert(items.end(), media.begin(), media.end());
    } else if (cfg_.text_position == "after") {
      items = media;
      items.insert(items.end(), text.begin(), text.end());
    } else {
      items = text;
      items.insert(items.end(), media.begin(), media.end());
      std::stable_sort(
          items.begin(), items.end(),
          [&](const SequenceItem& a, const SequenceItem& b) { return start(a) < start(b); });
    }
    SequencerOptions o = cfg_.layout;
    o.first_position = first_position;
    return build_fused_sequence(items, o);
  };

  FusedSequence seq = layout(chunks);
  // Sequence budget: drop the latest media tokens until it fits; text goes last.
  while (cfg_.max_tokens > 0 && seq.length() > cfg_.max_tokens) {
    int64_t over = seq.length() - cfg_.max_tokens;
    int best = -1;
    for (int i = 0; i < static_cast<int>(chunks.size()); ++i) {
      if (chunks[i].num_tokens() == 0) continue;
      const bool media = chunks[i].modality != Modality::kText;
      if (best < 0) {
        best = i;
        continue;
      }
      const bool best_media = chunks[best].modality != Modality::kText;
      if ((media && !best_media) ||
          (media == best_media && chunks[i].start_us >= chunks[best].start_us))
        best = i;
    }
    if (best < 0) break;
    TokenChunk& c = chunks[best];
    const int64_t n = c.num_tokens();
    const int64_t cut = divisible(c.modality) ? std::min(over, n) : n;
    dropped[modality_name(c.modality)] += cut;
    c = keep_first(c, n - cut);
    if (c.num_tokens() == 0) chunks.erase(chunks.begin() + best);
    seq = layout(chunks);
  }
  seq.segment = segment;
  seq.truncated = std::move(dropped);
  return seq;
}

FusedSequence SegmentAssembler::media_prefix(int64_t chunks) {
  std::vector<TokenChunk> media;
  for (const auto& [w, cs] : windows_)
    for (const TokenChunk& c : cs)
      if (c.modality != Modality::kText && c.num_tokens() > 0) media.push_back(c);
  if (media.empty() || chunks <= 0) return {};
  const FusedSequence seq = assemble(std::move(media), next_segment_, next_position_);
  // The media start after their leading boundary tokens; the first `chunks` pieces of chunk_s
  // take the temporal positions below `limit` (as the interleaving groups them).
  int64_t i0 = 0;
  while (i0 < seq.length() && seq.modality[size_t(i0)] == Modality::kText) ++i0;
  if (i0 == 0 || i0 == seq.length()) return {};
  const at::Tensor t = seq.positions[0].contiguous();
  const int64_t* tp = t.data_ptr<int64_t>();
  const auto per_chunk =
      static_cast<int64_t>(cfg_.layout.position_ids_per_second * cfg_.layout.seconds_per_chunk);
  const int64_t base = tp[i0 - 1] + 1;
  const int64_t limit = chunks >= (INT64_MAX - base) / std::max<int64_t>(per_chunk, 1)
                            ? INT64_MAX
                            : base + per_chunk * chunks;
  int64_t end = i0;
  while (end < seq.length() && seq.modality[size_t(end)] != Modality::kText && tp[end] < limit)
    ++end;
  if (end == i0) return {};
  return first_tokens(seq, end);
}

// ---- the node ----

Contract UnifiedSequencer::contract() {
  return Contract()
      .doc(
          "Gathers the TokenChunks of a segment (whole input, or segment_s windows), wraps media "
          "in boundary tokens, interleaves a clip's video and audio in chunk_s pieces and "
          "assigns TMRoPE (t, h, w) positions as Qwen2.5-Omni does; emits a FusedSequence.")
      .input(kText)
      .input(kImage)
      .input(kVideo)
      .input(kAudio)
      .output(kSequence)
      .output(kPartial)
      .param(kSegment)
      .param(kChunk)
      .param(kPositionIdsPerSecond)
      .param(kTextPosition)
      .param(kPairAudioVideo)
      .param(kContinuePositions)
      .param(kMaxTokens)
      .param(kMaxText)
      .param(kMaxImage)
      .param(kMaxVideo)
      .param(kMaxAudio)
      .param(kImageStart)
      .param(kImageEnd)
      .param(kAudioStart)
      .param(kAudioEnd)
      .param(kVideoStart)
      .param(kVideoEnd)
      .param(kPromptPerText)
      .param(kEmitPartial)
      .policy(InputPolicy::kImmediate);
}

void UnifiedSequencer::open(Context& ctx) {
  SequencerConfig c;
  c.segment_s = ctx.param(kSegment);
  c.layout.seconds_per_chunk = ctx.param(kChunk);
  c.layout.position_ids_per_second = ctx.param(kPositionIdsPerSecond);
  c.text_position = ctx.param(kTextPosition);
  c.pair_audio_video = ctx.param(kPairAudioVideo);
  c.continue_positions = ctx.param(kContinuePositions);
  c.prompt_per_text = ctx.param(kPromptPerText);
  c.max_tokens = ctx.param(kMaxTokens);
  c.max_text = ctx.param(kMaxText);
  c.max_image = ctx.param(kMaxImage);
  c.max_video = ctx.param(kMaxVideo);
  c.max_audio = ctx.param(kMaxAudio);
  auto& sp = c.layout.special;
  sp.image_start = ctx.param(kImageStart);
  sp.image_end = ctx.param(kImageEnd);
  sp.audio_start = ctx.param(kAudioStart);
  sp.audio_end = ctx.param(kAudioEnd);
  sp.video_start = ctx.param(kVideoStart);
  sp.video_end = ctx.param(kVideoEnd);
  asm_ = std::make_unique<SegmentAssembler>(c);  // ConfigError; the runtime names the node
  partial_ = ctx.param(kEmitPartial);
  if (partial_ && (c.segment_s > 0 || c.text_position != "after"))
    throw ConfigError("emit_partial needs the whole input (segment_s 0) and text_position after");
  if (!partial_) ctx.close_output(kPartial);
}

Flow UnifiedSequencer::process(Context& ctx) {
  if (const auto text = ctx.input(kText); !text.empty()) asm_->add(text.get());
  for (const auto* media : {&kImage, &kVideo, &kAudio}) {
    const auto pk = ctx.input(*media);
    if (pk.empty()) continue;
    const int port = ctx.input_port(*media);
    const TokenChunk& c = pk.get();
    latest_us_[port] = std::max(latest_us_[port], c.start_us);
    if (c.num_tokens() > 0) first_media_us_ = std::min(first_media_us_, c.start_us);
    // A visual chunk at t: every earlier one has come (timestamps increase); audio: up to its end.
    const auto it = covered_us_.try_emplace(port, INT64_MIN).first;
    it->second = std::max(it->second, std::max(c.start_us, c.end_us));
    asm_->add(c);
  }
  if (partial_) emit_partial(ctx);
  if (asm_->config().segment_s > 0) {
    // A window is complete once every media input still open has moved past its end.
    int64_t watermark = INT64_MAX;
    for (const auto* media : {&kImage, &kVideo, &kAudio}) {
      const int port = ctx.input_port(*media);
      if (ctx.input_done(port)) continue;
      auto it = latest_us_.find(port);
      watermark = std::min(watermark, it == latest_us_.end() ? INT64_MIN : it->second);
    }
    if (watermark != INT64_MAX) emit_all(ctx, asm_->take_ready(watermark));
  }
  return Flow::kContinue;
}

void UnifiedSequencer::close(Context& ctx) { emit_all(ctx, asm_->finish()); }

void UnifiedSequencer::emit_partial(Context& ctx) {
  if (first_media_us_ == INT64_MAX) return;
  // Media time every media input has delivered all its chunks for (an input that has ended has
  // delivered everything).
  int64_t covered = INT64_MAX;
  for (const auto* media : {&kImage, &kVideo, &kAudio}) {
    const int port = ctx.input_port(*media);
    if (ctx.input_done(port)) continue;
    auto it = covered_us_.find(port);
    covered = std::min(covered, it == covered_us_.end() ? INT64_MIN : it->second);
  }
  if (covered == INT64_MIN) return;
  const auto chunk_us = static_cast<int64_t>(asm_->config().layout.seconds_per_chunk * 1e6);
  const int64_t chunks =
      covered == INT64_MAX ? SegmentAssembler::kAllChunks : (covered - first_media_us_) / chunk_us;
  if (chunks <= partial_chunks_) return;
  partial_chunks_ = chunks;
  FusedSequence s = asm_->media_prefix(chunks);
  if (s.length() <= partial_tokens_) return;
  partial_tokens_ = s.length();
  ctx.count("partial_sequences");
  const int64_t ts = std::max(last_ts_ + 1, s.start_us);
  last_ts_ = ts;
  ctx.emit(kPartial, std::move(s), Timestamp(ts));
  ctx.set_bound(kSequence, Timestamp(ts + 1));  // sync consumers need not wait on `sequence`
}

void UnifiedSequencer::emit_all(Context& ctx, std::vector<FusedSequence> seqs) {
  for (auto& s : seqs) {
    for (const auto& [mod, n] : s.truncated) {
      if (n == 0) continue;
      ctx.count("truncated_" + mod + "_tokens", n);
      ctx.warn("segment " + std::to_string(s.segment) + ": " + std::to_string(n) + " " + mod +
               " tokens dropped by the token budget");
    }
    ctx.count("sequences");
    ctx.count("tokens", s.length());
    const int64_t ts = std::max(last_ts_ + 1, s.start_us);
    last_ts_ = ts;
    ctx.emit(kSequence, std::move(s), Timestamp(ts));
    if (partial_) ctx.set_bound(kPartial, Timestamp(ts + 1));
  }
}

}  // namespace omni
