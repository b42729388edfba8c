// Parity of the sequencer's TMRoPE positions with Hugging Face transformers' Qwen2.5-Omni
// get_rope_index (fixture: scripts/fixtures/make_rope_index_fixture.py), plus the layout rules.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "fusion/fused_sequence.h"

namespace omni {
namespace {

using Kind = SequenceItem::Kind;

TokenChunk make_chunk(Modality m, int64_t n, int64_t start_us = 0, int64_t end_us = 0) {
  TokenChunk c;
  c.modality = m;
  if (m == Modality::kText)
    c.ids = at::arange(n, at::kLong) + 1000;
  else
    c.embeddings = at::randn({n, 4});
  c.start_us = start_us;
  c.end_us = end_us;
  c.grid_w = n;
  return c;
}

TokenChunk visual_chunk(Modality m, int64_t gt, int64_t gh, int64_t gw, double spg = 0,
                        int64_t start_us = 0) {
  TokenChunk c = make_chunk(m, gt * gh * gw, start_us, start_us);
  c.grid_t = gt;
  c.grid_h = gh;
  c.grid_w = gw;
  c.seconds_per_grid = spg;
  return c;
}

// Rebuilds a fixture layout: owns the chunks, returns the items in order.
struct Layout {
  std::vector<std::unique_ptr<TokenChunk>> store;
  std::vector<SequenceItem> items;
  const TokenChunk* keep(TokenChunk c) {
    store.push_back(std::make_unique<TokenChunk>(std::move(c)));
    return store.back().get();
  }
};

Layout from_json(const nlohmann::json& items) {
  Layout l;
  for (const auto& it : items) {
    const std::string type = it["type"];
    SequenceItem s;
    if (type == "text") {
      s.kind = Kind::kText;
      s.chunks.push_back(l.keep(make_chunk(Modality::kText, it["n"])));
    } else if (type == "image") {
      s.kind = Kind::kImage;
      s.chunks.push_back(
          l.keep(visual_chunk(Modality::kImage, it["grid"][0], it["grid"][1], it["grid"][2])));
    } else if (type == "video" || type == "video_audio") {
      s.kind = type == "video" ? Kind::kVideo : Kind::kVideoWithAudio;
      s.chunks.push_back(l.keep(visual_chunk(Modality::kVideo, it["grid"][0], it["grid"][1],
                                             it["grid"][2], it["second_per_grid"])));
      if (type == "video_audio")
        s.audio_chunks.push_back(l.keep(make_chunk(Modality::kAudio, it["audio_n"])));
    } else if (type == "audio") {
      s.kind = Kind::kAudio;
      s.chunks.push_back(l.keep(make_chunk(Modality::kAudio, it["n"])));
    }
    l.items.push_back(std::move(s));
  }
  return l;
}

std::string kind_of(const FusedSequence& s, int64_t i) {
  for (const auto& [idx, name] : s.boundaries)
    if (idx == i) return name;
  return modality_name(s.modality[i]);
}

TEST(RopeIndexParity, MatchesTransformersGetRopeIndex) {
  std::ifstream f(std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/fusion/rope_index.json");
  ASSERT_TRUE(f.good());
  const auto doc = nlohmann::json::parse(f);
  ASSERT_GE(doc["cases"].size(), 8u);
  for (const auto& c : doc["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    Layout l = from_json(c["items"]);
    FusedSequence s = build_fused_sequence(l.items, SequencerOptions{});
    const auto& kinds = c["kinds"];
    ASSERT_EQ(s.length(), static_cast<int64_t>(kinds.size()));
    for (int64_t i = 0; i < s.length(); ++i) ASSERT_EQ(kind_of(s, i), kinds[i]) << "token " << i;
    for (int axis = 0; axis < 3; ++axis)
      for (int64_t i = 0; i < s.length(); ++i)
        ASSERT_EQ(s.positions[axis][i].item<int64_t>(), c["positions"][axis][i].get<int64_t>())
            << "axis " << axis << " token " << i;
    // HF's mrope delta = max position + 1 - length.
    EXPECT_EQ(s.next_position() - s.length(), c["delta"].get<int64_t>());
  }
}

TEST(FusedSequenceLayout, TextAdvancesAllAxesAndIdsAreKept) {
  Layout l;
  l.items.push_back({Kind::kText, {l.keep(make_chunk(Modality::kText, 4))}, {}});
  SequencerOptions o;
  o.first_position = 10;
  FusedSequence s = build_fused_sequence(l.items, o);
  ASSERT_EQ(s.length(), 4);
  for (int a = 0; a < 3; ++a) EXPECT_TRUE(at::equal(s.positions[a], at::arange(10, 14, at::kLong)));
  EXPECT_TRUE(at::equal(s.text_ids, at::arange(4, at::kLong) + 1000));
  EXPECT_EQ(s.next_position(), 14);
}

TEST(FusedSequenceLayout, VideoFramesTakeTFromTimestampsAndHWFromGrid) {
  // Three single-frame chunks at 0, 0.5 s, 1.2 s: t = 0, 12, 30 (25 ids/s) after video_start.
  Layout l;
  SequenceItem v{Kind::kVideo, {}, {}};
  for (int64_t ts : {0, 500000, 1200000})
    v.chunks.push_back(l.keep(visual_chunk(Modality::kVideo, 1, 2, 3, 0, ts)));
  l.items.push_back(v);
  FusedSequence s = build_fused_sequence(l.items, SequencerOptions{});
  ASSERT_EQ(s.length(), 2 + 3 * 6);
  EXPECT_EQ(s.boundaries.front(), (std::pair<int64_t, std::string>{0, "video_start"}));
  EXPECT_EQ(s.boundaries.back(), (std::pair<int64_t, std::string>{19, "video_end"}));
  EXPECT_EQ(s.text_ids[0].item<int64_t>(), SpecialTokens{}.video_start);
  const int64_t expect_t[3] = {1, 13, 31};
  for (int f = 0; f < 3; ++f)
    for (int k = 0; k < 6; ++k) {
      const int64_t i = 1 + f * 6 + k;
      EXPECT_EQ(s.positions[0][i].item<int64_t>(), expect_t[f]);
      EXPECT_EQ(s.positions[1][i].item<int64_t>(), 1 + k / 3);
      EXPECT_EQ(s.positions[2][i].item<int64_t>(), 1 + k % 3);
      EXPECT_EQ(s.text_ids[i].item<int64_t>(), -1);
    }
  EXPECT_EQ(s.positions[0][19].item<int64_t>(), 32);  // largest id so far + 1
  EXPECT_EQ(s.tokens.at("video"), 18);
  EXPECT_EQ(s.tokens.at("boundary"), 2);
}

TEST(FusedSequenceLayout, InterleavesAudioAndVideoWithGapsInTwoSecondChunks) {
  // Video frames every second for 5 s; audio 1 s chunks of 25 tokens at 0-1 s and 3-5 s (gap).
  Layout l;
  SequenceItem it{Kind::kVideoWithAudio, {}, {}};
  for (int64_t sec = 0; sec < 5; ++sec)
    it.chunks.push_back(l.keep(visual_chunk(Modality::kVideo, 1, 1, 2, 0, sec * 1000000)));
  for (int64_t sec : {0, 3, 4})
    it.audio_chunks.push_back(
        l.keep(make_chunk(Modality::kAudio, 25, sec * 1000000, (sec + 1) * 1000000)));
  l.items.push_back(it);
  FusedSequence s = build_fused_sequence(l.items, SequencerOptions{});
  ASSERT_EQ(s.length(), 4 + 10 + 75);
  // Order: [vs as] V0 V1 (t 0..49) A(0..24) | V2 V3 (50..99) A(75..99) | V4 A(100..124) [ae ve]
  std::string order;
  for (int64_t i = 2; i < s.length() - 2; ++i)
    if (order.empty() || order.back() != (s.modality[i] == Modality::kVideo ? 'V' : 'A'))
      order.push_back(s.modality[i] == Modality::kVideo ? 'V' : 'A');
  EXPECT_EQ(order, "VAVAVA");
  EXPECT_EQ(s.positions[0][0].item<int64_t>(), 0);
  EXPECT_EQ(s.positions[0][1].item<int64_t>(), 0);  // both start tokens share a position
  // The audio after the gap is time-aligned: first token at 3 s -> st + 75.
  int64_t first_late_audio = -1;
  for (int64_t i = 0; i < s.length(); ++i)
    if (s.modality[i] == Modality::kAudio && s.positions[0][i].item<int64_t>() > 30) {
      first_late_audio = i;
      break;
    }
  ASSERT_GE(first_late_audio, 0);
  EXPECT_EQ(s.positions[0][first_late_audio].item<int64_t>(), 1 + 75);
  EXPECT_EQ(s.positions[1][first_late_audio].item<int64_t>(), 1 + 75);
  // Both end tokens share max + 1.
  const int64_t L = s.length();
  EXPECT_EQ(s.positions[0][L - 1].item<int64_t>(), s.positions[0][L - 2].item<int64_t>());
  EXPECT_EQ(s.positions[0][L - 1].item<int64_t>(), 1 + 124 + 1);
  EXPECT_EQ(s.boundaries.size(), 4u);
}

TEST(FusedSequenceLayout, ChunkByPositionMatchesHfQuirks) {
  // Gap wider than a chunk: HF advances one chunk per token, giving single-token chunks.
  auto c = chunk_by_position({0, 10, 160, 160, 160, 160}, 50, 0);
  std::vector<std::pair<int64_t, int64_t>> want{{0, 2}, {2, 3}, {3, 4}, {4, 6}};
  EXPECT_EQ(c, want);
  EXPECT_EQ(chunk_by_position({}, 50, 0), (std::vector<std::pair<int64_t, int64_t>>{{0, 0}}));
}

TEST(FusedSequenceLayout, GridMismatchIsAnInputError) {
  Layout l;
  TokenChunk c = visual_chunk(Modality::kImage, 1, 2, 2);
  c.grid_w = 3;
  l.items.push_back({Kind::kImage, {l.keep(c)}, {}});
  EXPECT_THROW(build_fused_sequence(l.items, SequencerOptions{}), InputError);
}

}  // namespace
}  // namespace omni
