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
  for (auto& [w, chunks] : windows_) {
    out.push_back(assemble(std::move(chunks), next_segment_++, next_position_));
    if (cfg_.continue_positions) next_position_ = out.back().next_position();
  }
  windows_.clear();
  return out;
}

namespace {

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

// ---- the node ----

Contract UnifiedSequencer::contract() {
  SpecialTokens sp;
  return Contract()
      .doc(
          "Gathers the TokenChunks of a segment (whole input, or segment_s windows), wraps media "
          "in boundary tokens, interleaves a clip's video and audio in chunk_s pieces and "
          "assigns TMRoPE (t, h, w) positions as Qwen2.5-Omni does; emits a FusedSequence.")
      .optional_input<TokenChunk>("text", "text tokens (ids or embeddings), e.g. the prompt")
      .optional_input<TokenChunk>("image", "image tokens")
      .optional_input<TokenChunk>("video", "video frame tokens (one chunk per frame or clip)")
      .optional_input<TokenChunk>("audio", "audio tokens")
      .output<FusedSequence>("sequence", "one fused sequence per segment")
      .param("segment_s", 0.0, "segment length in seconds for streaming; 0 = the whole input")
      .param("chunk_s", 2.0, "audio/video interleaving chunk in seconds (Qwen2.5-Omni: 2)")
      .param("position_ids_per_second", 25.0, "temporal position ids per second of media time")
      .param("text_position", "after", "where text goes relative to media: after, before, time")
      .param("pair_audio_video", true,
             "interleave a clip's video with its audio (same stream "
             "prefix, or the only video with the only audio)")
      .param("continue_positions", true, "later segments number on after the largest id so far")
      .param("max_tokens", int64_t{0}, "token budget per sequence (0 = unlimited)")
      .param("max_text_tokens", int64_t{0}, "text token budget (0 = unlimited)")
      .param("max_image_tokens", int64_t{0}, "image token budget (0 = unlimited)")
      .param("max_video_tokens", int64_t{0}, "video token budget (0 = unlimited)")
      .param("max_audio_tokens", int64_t{0}, "audio token budget (0 = unlimited)")
      .param("image_start_id", sp.image_start, "<|image_start|> id (byte tokenizer default)")
      .param("image_end_id", sp.image_end, "<|image_end|> id")
      .param("audio_start_id", sp.audio_start, "<|audio_start|> id")
      .param("audio_end_id", sp.audio_end, "<|audio_end|> id")
      .param("video_start_id", sp.video_start, "<|video_start|> id")
      .param("video_end_id", sp.video_end, "<|video_end|> id")
      .policy(InputPolicy::kImmediate);
}

void UnifiedSequencer::open(Context& ctx) {
  const Params& p = ctx.params();
  SequencerConfig c;
  c.segment_s = p.get_double("segment_s");
  c.layout.seconds_per_chunk = p.get_double("chunk_s");
  c.layout.position_ids_per_second = p.get_double("position_ids_per_second");
  c.text_position = p.get_string("text_position");
  c.pair_audio_video = p.get_bool("pair_audio_video");
  c.continue_positions = p.get_bool("continue_positions");
  c.max_tokens = p.get_int("max_tokens");
  c.max_text = p.get_int("max_text_tokens");
  c.max_image = p.get_int("max_image_tokens");
  c.max_video = p.get_int("max_video_tokens");
  c.max_audio = p.get_int("max_audio_tokens");
  auto& sp = c.layout.special;
  sp.image_start = p.get_int("image_start_id");
  sp.image_end = p.get_int("image_end_id");
  sp.audio_start = p.get_int("audio_start_id");
  sp.audio_end = p.get_int("audio_end_id");
  sp.video_start = p.get_int("video_start_id");
  sp.video_end = p.get_int("video_end_id");
  asm_ = std::make_unique<SegmentAssembler>(c);  // ConfigError; the runtime names the node
}

Flow UnifiedSequencer::process(Context& ctx) {
  static const char* kPorts[] = {"text", "image", "video", "audio"};
  for (const char* name : kPorts) {
    const int port = ctx.input_port(name);
    const Packet& pk = ctx.input(port);
    if (pk.empty()) continue;
    TokenChunk c = pk.get<TokenChunk>();
    if (port != ctx.input_port("text")) latest_us_[port] = std::max(latest_us_[port], c.start_us);
    asm_->add(std::move(c));
  }
  if (asm_->config().segment_s > 0) {
    // A window is complete once every media input still open has moved past its end.
    int64_t watermark = INT64_MAX;
    for (const char* name : {"image", "video", "audio"}) {
      const int port = ctx.input_port(name);
      if (ctx.input_done(port)) continue;
      auto it = latest_us_.find(port);
      watermark = std::min(watermark, it == latest_us_.end() ? INT64_MIN : it->second);
    }
    if (watermark != INT64_MAX) emit_all(ctx, asm_->take_ready(watermark));
  }
  return Flow::kContinue;
}

void UnifiedSequencer::close(Context& ctx) { emit_all(ctx, asm_->finish()); }

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
    ctx.emit<FusedSequence>("sequence", std::move(s), Timestamp(ts));
  }
}

}  // namespace omni
