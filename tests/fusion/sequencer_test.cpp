// SegmentAssembler (the UnifiedSequencer's logic): ordering, pairing a clip's audio and video,
// text placement, token budgets with every drop recorded, streaming windows, and agreement with
// the encoders' token-count functions.
#include "fusion/sequencer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"

namespace omni {
namespace {

TokenChunk text(int64_t n, int64_t ts = 0) {
  TokenChunk c;
  c.modality = Modality::kText;
  c.ids = at::arange(n, at::kLong) + 65;
  c.start_us = c.end_us = ts;
  c.grid_w = n;
  c.stream = "prompt/text";
  return c;
}

TokenChunk frame(int64_t ts, int64_t gh = 2, int64_t gw = 2, std::string stream = "clip/video") {
  TokenChunk c;
  c.modality = Modality::kVideo;
  c.embeddings = at::randn({gh * gw, 8});
  c.start_us = c.end_us = ts;
  c.grid_h = gh;
  c.grid_w = gw;
  c.stream = std::move(stream);
  return c;
}

TokenChunk audio(int64_t start, int64_t n, std::string stream = "clip/audio") {
  TokenChunk c;
  c.modality = Modality::kAudio;
  c.embeddings = at::randn({n, 8});
  c.start_us = start;
  c.end_us = start + n * 40000;  // 25 tokens per second
  c.grid_w = n;
  c.stream = std::move(stream);
  return c;
}

std::vector<std::string> kinds(const FusedSequence& s) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < s.length(); ++i) {
    std::string k = modality_name(s.modality[i]);
    for (const auto& [idx, name] : s.boundaries)
      if (idx == i) k = name;
    if (out.empty() || out.back() != k || k.find('_') != std::string::npos) out.push_back(k);
  }
  return out;
}

TEST(SegmentAssembler, WholeClipPairsAudioWithVideoAndPutsTextAfter) {
  SegmentAssembler a(SequencerConfig{});
  a.add(text(5));
  for (int64_t i = 0; i < 6; ++i) a.add(frame(i * 500000));  // 2 fps, 3 s
  for (int64_t s = 0; s < 3; ++s) a.add(audio(s * 1000000, 25));
  EXPECT_TRUE(a.take_ready(INT64_MAX).empty());  // whole-input mode: only finish() emits
  auto out = a.finish();
  ASSERT_EQ(out.size(), 1u);
  const FusedSequence& s = out[0];
  EXPECT_EQ(s.length(), 4 + 24 + 75 + 5);
  const std::vector<std::string> want{"video_start", "audio_start", "video",     "audio", "video",
                                      "audio",       "audio_end",   "video_end", "text"};
  EXPECT_EQ(kinds(s), want);
  EXPECT_EQ(s.tokens.at("video"), 24);
  EXPECT_EQ(s.tokens.at("audio"), 75);
  EXPECT_EQ(s.tokens.at("text"), 5);
  EXPECT_TRUE(s.truncated.empty());
  EXPECT_EQ(s.start_us, 0);
  EXPECT_EQ(s.end_us, 3000000);
  // Text after the clip continues from the largest id + 1 on all three axes.
  const int64_t L = s.length();
  EXPECT_EQ(s.positions[0][L - 5].item<int64_t>(), s.positions[0][L - 6].item<int64_t>() + 1);
}

// emit_partial's layout: the media of the complete chunks is exactly the start of the final
// prompt (same tokens, positions, embeddings), and prompt_per_text gives one prompt per question.
TEST(SegmentAssembler, MediaPrefixIsTheStartOfEachPrompt) {
  SequencerConfig cfg;
  cfg.prompt_per_text = true;
  SegmentAssembler a(cfg);
  for (int64_t i = 0; i < 5; ++i) a.add(frame(i * 1000000));  // 1 fps, 5 s
  for (int64_t s = 0; s < 5; ++s) a.add(audio(s * 1000000, 25));
  EXPECT_EQ(a.media_prefix(0).length(), 0);
  const FusedSequence two_s = a.media_prefix(1);  // the first 2 s chunk
  const FusedSequence all = a.media_prefix(SegmentAssembler::kAllChunks);
  ASSERT_GT(two_s.length(), 2);
  ASSERT_GT(all.length(), two_s.length());
  // Start tokens, then the first chunk's frames and audio; the end boundaries are left out.
  EXPECT_EQ(two_s.tokens.at("video"), 8);
  EXPECT_EQ(two_s.tokens.at("audio"), 50);
  EXPECT_NE(all.modality.back(), Modality::kText);
  a.add(text(4, 0));
  a.add(text(6, 1));
  const auto prompts = a.finish();
  ASSERT_EQ(prompts.size(), 2u);
  EXPECT_EQ(prompts[0].tokens.at("text"), 4);
  EXPECT_EQ(prompts[1].tokens.at("text"), 6);
  for (const FusedSequence& p : prompts) {
    EXPECT_EQ(p.segment, 0);
    for (const FusedSequence* part : {&two_s, &all}) {
      const int64_t n = part->length();
      EXPECT_TRUE(p.positions.slice(1, 0, n).equal(part->positions));
      EXPECT_TRUE(p.text_ids.slice(0, 0, n).equal(part->text_ids));
      EXPECT_EQ(std::vector<Modality>(p.modality.begin(), p.modality.begin() + n), part->modality);
      int64_t off = 0;  // the embedded pieces hold the same rows
      for (const FusedPiece& piece : part->pieces) {
        for (const FusedPiece& q : p.pieces)
          if (q.offset == piece.offset && piece.embeddings.defined()) {
            EXPECT_TRUE(q.embeddings.slice(0, 0, piece.length()).equal(piece.embeddings));
          }
        off += piece.length();
      }
      EXPECT_EQ(off, n);
    }
  }
  SequencerConfig bad;
  bad.prompt_per_text = true;
  bad.segment_s = 2;
  EXPECT_THROW(SegmentAssembler{bad}, ConfigError);
}

TEST(SegmentAssembler, TextPositionAndUnpairedStreams) {
  SequencerConfig c;
  c.text_position = "before";
  c.pair_audio_video = false;
  SegmentAssembler a(c);
  a.add(frame(0));
  a.add(audio(0, 10));
  a.add(text(3, 5000000));
  auto s = a.finish().at(0);
  const std::vector<std::string> want{"text",        "video_start", "video",    "video_end",
                                      "audio_start", "audio",       "audio_end"};
  EXPECT_EQ(kinds(s), want);

  c.text_position = "time";
  c.pair_audio_video = true;
  SegmentAssembler b(c);
  b.add(text(3, 5000000));
  b.add(frame(0, 2, 2, "cam/video"));
  b.add(audio(0, 10, "mic/audio"));  // different clips, but the only pair: paired
  b.add(frame(0, 1, 1, "other/video"));
  auto s2 = b.finish().at(0);
  // Two video streams: 'cam' and 'mic' do not share a prefix, so nothing pairs.
  const std::vector<std::string> want2{"video_start", "video",     "video_end",   "video_start",
                                       "video",       "video_end", "audio_start", "audio",
                                       "audio_end",   "text"};
  EXPECT_EQ(kinds(s2), want2);
  SequencerConfig middle;
  middle.text_position = "middle";
  EXPECT_THROW(SegmentAssembler{middle}, ConfigError);
}

TEST(SegmentAssembler, PerModalityBudgetsDropLatestTokensAndRecordIt) {
  SequencerConfig c;
  c.max_audio = 30;
  c.max_video = 10;  // frames are 4 tokens: 2 whole frames fit, the rest are dropped
  c.max_text = 2;
  SegmentAssembler a(c);
  a.add(text(5));
  for (int64_t i = 0; i < 4; ++i) a.add(frame(i * 1000000));
  a.add(audio(0, 25));
  a.add(audio(1000000, 25));
  auto s = a.finish().at(0);
  EXPECT_EQ(s.tokens.at("audio"), 30);
  EXPECT_EQ(s.tokens.at("video"), 8);
  EXPECT_EQ(s.tokens.at("text"), 2);
  EXPECT_EQ(s.truncated.at("audio"), 20);
  EXPECT_EQ(s.truncated.at("video"), 8);
  EXPECT_EQ(s.truncated.at("text"), 3);
  // Text keeps its first tokens.
  EXPECT_EQ(s.text_ids[s.length() - 2].item<int64_t>(), 65);
  EXPECT_EQ(s.text_ids[s.length() - 1].item<int64_t>(), 66);
}

TEST(SegmentAssembler, SequenceBudgetTrimsLatestMediaFirst) {
  SequencerConfig c;
  c.max_tokens = 40;
  SegmentAssembler a(c);
  a.add(text(6));
  a.add(frame(0));
  a.add(audio(0, 50));
  auto s = a.finish().at(0);
  EXPECT_LE(s.length(), 40);
  EXPECT_EQ(s.tokens.at("text"), 6);  // text is kept while media can give way
  EXPECT_GT(s.truncated.at("audio"), 0);
  int64_t total_dropped = 0;
  for (const auto& [m, n] : s.truncated) total_dropped += n;
  EXPECT_EQ(s.length() + total_dropped, 4 + 4 + 50 + 6);
  EXPECT_EQ(s.length(), 40);
}

TEST(SegmentAssembler, StreamingWindowsContinuePositions) {
  SequencerConfig c;
  c.segment_s = 2.0;
  SegmentAssembler a(c);
  for (int64_t i = 0; i < 5; ++i) a.add(frame(i * 1000000));  // 0..4 s
  for (int64_t s = 0; s < 5; ++s) a.add(audio(s * 1000000, 25));
  EXPECT_TRUE(a.take_ready(1999999).empty());  // window [0, 2 s) not complete yet
  auto first = a.take_ready(2000000);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].segment, 0);
  EXPECT_EQ(first[0].tokens.at("video"), 8);
  EXPECT_EQ(first[0].tokens.at("audio"), 50);
  auto rest = a.finish();
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].segment, 1);
  EXPECT_EQ(rest[1].segment, 2);
  EXPECT_EQ(rest[0].positions.min().item<int64_t>(), first[0].next_position());
  EXPECT_EQ(rest[1].positions.min().item<int64_t>(), rest[0].next_position());
  EXPECT_EQ(rest[1].tokens.at("video"), 4);
}

// Token counts from "encoder" functions (same shape as the encoders' image_tokens(h, w) with a
// 14 px patch and 2x2 merge, and audio_tokens(samples) at 16 kHz): the sequence must place
// exactly those counts, with h/w spanning the grid and audio ids advancing 25 per second.
int64_t grid_side(int64_t px) { return px / 28; }
int64_t audio_tokens_for(int64_t samples) {
  const int64_t frames = samples / 160;
  return ((frames + 1) / 2 + 1) / 2;
}

TEST(SegmentAssembler, CountsAgreeWithEncoderTokenFunctions) {
  SequencerConfig unpaired;
  unpaired.pair_audio_video = false;
  SegmentAssembler a(unpaired);
  const int64_t H = 224, W = 336;
  for (int64_t i = 0; i < 3; ++i) a.add(frame(i * 400000, grid_side(H), grid_side(W)));
  const int64_t samples = 16000 * 2;  // 2 s
  a.add(audio(0, audio_tokens_for(samples)));
  auto s = a.finish().at(0);
  EXPECT_EQ(s.tokens.at("video"), 3 * grid_side(H) * grid_side(W));
  EXPECT_EQ(s.tokens.at("audio"), audio_tokens_for(samples));
  EXPECT_EQ(audio_tokens_for(samples), 50);
  // Video: h and w offsets span exactly the grid.
  int64_t first_video = -1, first_audio = -1;
  for (int64_t i = 0; i < s.length(); ++i) {
    if (s.modality[i] == Modality::kVideo && first_video < 0) first_video = i;
    if (s.modality[i] == Modality::kAudio && first_audio < 0) first_audio = i;
  }
  const int64_t st = s.positions[1][first_video].item<int64_t>();
  at::Tensor vh = s.positions[1].slice(0, first_video, first_video + 3 * 8 * 12);
  at::Tensor vw = s.positions[2].slice(0, first_video, first_video + 3 * 8 * 12);
  EXPECT_EQ(vh.max().item<int64_t>() - st + 1, grid_side(H));
  EXPECT_EQ(vw.max().item<int64_t>() - st + 1, grid_side(W));
  // Frames at 0, 0.4, 0.8 s -> t offsets 0, 10, 20.
  EXPECT_EQ(s.positions[0][first_video + 96].item<int64_t>() - st, 10);
  EXPECT_EQ(s.positions[0][first_video + 192].item<int64_t>() - st, 20);
  // Audio: 50 consecutive ids (2 s at 25 ids/s).
  at::Tensor at_ = s.positions[0].slice(0, first_audio, first_audio + 50);
  EXPECT_EQ(at_.max().item<int64_t>() - at_.min().item<int64_t>(), 49);
}

TEST(SegmentAssembler, NoInputEmitsNothing) {
  SegmentAssembler a(SequencerConfig{});
  EXPECT_TRUE(a.finish().empty());
}

}  // namespace
}  // namespace omni
