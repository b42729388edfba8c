// The fusion nodes in a running graph: TokenChunk sources -> UnifiedSequencer -> Generate /
// FusionEncode, with truncation counted and warned, the debug dump's JSON, and registration.
#include "fusion/nodes.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/core_nodes.h"
#include "core/graph.h"
#include "core/json_codec.h"
#include "fusion/fusion_nodes.h"
#include "fusion/sequencer.h"

namespace omni {
namespace {

// Emits `count` TokenChunks of one modality, one per `step_us`: video frames (2x2 grid), audio
// (25 tokens per second of chunk) or a text prompt (byte ids of "hi?").
class ChunkSource : public Node {
 public:
  static constexpr Output<TokenChunk> kOut{"out"};
  static constexpr Param<std::string> kKind{"kind", "video", "video | audio | text"};
  static constexpr Param<int64_t> kCount{"count", 3, "chunks"};
  static constexpr Param<int64_t> kStep{"step_us", 1000000, "time between chunks"};
  static constexpr Param<int64_t> kDim{"dim", 32, "embedding width"};
  static Contract contract() {
    return Contract().output(kOut).param(kKind).param(kCount).param(kStep).param(kDim);
  }
  void open(Context& ctx) override {
    kind_ = ctx.param(kKind);
    count_ = ctx.param(kCount);
    step_ = ctx.param(kStep);
    dim_ = ctx.param(kDim);
  }
  Flow process(Context& ctx) override {
    if (i_ >= count_) return Flow::kDone;
    TokenChunk c;
    c.start_us = i_ * step_;
    c.stream = "clip/" + kind_;
    if (kind_ == "text") {  // "hi?", then "hi@", "hiA", ...
      c.modality = Modality::kText;
      c.ids = at::tensor({int64_t{104}, int64_t{105}, 63 + i_}, at::kLong);
      c.grid_w = 3;
    } else if (kind_ == "audio") {
      c.modality = Modality::kAudio;
      const int64_t n = step_ * 25 / 1000000;
      c.embeddings = values(n, 1.0);
      c.grid_w = n;
      c.end_us = c.start_us + step_;
    } else {
      c.modality = Modality::kVideo;
      c.embeddings = values(4, 2.0);
      c.grid_h = c.grid_w = 2;
      c.end_us = c.start_us;
    }
    ctx.emit(kOut, std::move(c), Timestamp(i_ * step_));
    ++i_;
    return Flow::kContinue;
  }

 private:
  // Deterministic embeddings [n, dim] (the same in every run of a graph).
  at::Tensor values(int64_t n, double kind) const {
    return at::sin(at::arange(n * dim_, at::kFloat).reshape({n, dim_}) * 0.37 + kind + double(i_));
  }
  std::string kind_;
  int64_t count_ = 0, step_ = 0, dim_ = 0, i_ = 0;
};

std::map<std::string, ParamValue> model_params(int64_t max_new = 4) {
  return {{"dim", int64_t{32}},     {"layers", int64_t{1}},      {"heads", int64_t{4}},
          {"kv_heads", int64_t{2}}, {"max_new_tokens", max_new}, {"seed", int64_t{3}}};
}

const NodeStats& stats_of(const GraphStats& s, const std::string& name) {
  for (const auto& n : s.nodes)
    if (n.name == name) return n;
  throw std::runtime_error("no node " + name);
}

TEST(FusionNodes, RegisteredWithContracts) {
  Registry r;
  register_fusion_nodes(r);
  for (const char* n : {"UnifiedSequencer", "Generate", "FusionEncode"}) EXPECT_TRUE(r.contains(n));
  const Contract& c = r.get("UnifiedSequencer").contract;
  EXPECT_EQ(c.inputs().size(), 4u);
  EXPECT_EQ(c.outputs().at(0).type.name, "FusedSequence");
  EXPECT_NE(c.find_param("segment_s"), nullptr);
  EXPECT_EQ(r.get("Generate").contract.outputs().at(0).type.name, "string");
}

TEST(FusionNodes, ClipThroughSequencerAndGenerate) {
  Registry r;
  register_core_nodes(r);
  register_fusion_nodes(r);
  GraphBuilder b("fuse_test");
  b.add<ChunkSource>("video", {{"kind", "video"}, {"count", int64_t{4}}});
  b.add<ChunkSource>("audio", {{"kind", "audio"}, {"count", int64_t{4}}});
  b.add<ChunkSource>("prompt", {{"kind", "text"}, {"count", int64_t{1}}});
  b.add("seq", "UnifiedSequencer", {{"max_audio_tokens", int64_t{60}}});
  b.add("gen", "Generate", model_params());
  b.add("enc", "FusionEncode",
        {{"dim", int64_t{32}},
         {"layers", int64_t{1}},
         {"heads", int64_t{4}},
         {"kv_heads", int64_t{2}}});
  b.connect("video.out", "seq.video").connect("audio.out", "seq.audio");
  b.connect("prompt.out", "seq.text");
  b.connect("seq.sequence", "gen.sequence").connect("seq.sequence", "enc.sequence");
  b.output("seq.sequence").output("gen.text").output("gen.ids").output("enc.embedding");
  auto g = b.build(r);
  std::mutex mu;
  std::vector<Packet> seqs, texts, ids, embs;
  g->observe("seq.sequence", [&](const Packet& p) {
    std::lock_guard l(mu);
    seqs.push_back(p);
  });
  g->observe("gen.text", [&](const Packet& p) {
    std::lock_guard l(mu);
    texts.push_back(p);
  });
  g->observe("gen.ids", [&](const Packet& p) {
    std::lock_guard l(mu);
    ids.push_back(p);
  });
  g->observe("enc.embedding", [&](const Packet& p) {
    std::lock_guard l(mu);
    embs.push_back(p);
  });
  g->run();
  ASSERT_EQ(seqs.size(), 1u);
  const auto& s = seqs[0].get<FusedSequence>();
  EXPECT_EQ(s.tokens.at("video"), 16);
  EXPECT_EQ(s.tokens.at("audio"), 60);  // 100 produced, budget 60
  EXPECT_EQ(s.tokens.at("text"), 3);
  const GraphStats stats = g->stats();
  const auto& st = stats_of(stats, "seq");
  EXPECT_EQ(st.counters.at("truncated_audio_tokens"), 40);
  ASSERT_FALSE(st.warnings.empty());
  EXPECT_NE(st.warnings[0].find("40 audio tokens dropped"), std::string::npos);
  ASSERT_EQ(texts.size(), 1u);
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_LE(ids[0].get<std::vector<int64_t>>().size(), 4u);
  EXPECT_EQ(texts[0].get<std::string>(), decode_byte_ids(ids[0].get<std::vector<int64_t>>()));
  ASSERT_EQ(embs.size(), 1u);
  EXPECT_EQ(embs[0].get<at::Tensor>().sizes(), at::IntArrayRef({32}));

  // The debug dump: per-token modality with boundaries by name, positions, text ids.
  nlohmann::json j;
  packet_to_json(seqs[0], j);
  EXPECT_EQ(j["length"], s.length());
  EXPECT_EQ(j["modality"][0], "video_start");
  EXPECT_EQ(j["modality"][1], "audio_start");
  EXPECT_EQ(j["t"].size(), static_cast<size_t>(s.length()));
  EXPECT_EQ(j["truncated"]["audio"], 40);
  EXPECT_EQ(j["text_ids"][s.length() - 1], 63);
}

TEST(FusionNodes, StreamingSegmentsAndGenerateWithCache) {
  Registry r;
  register_fusion_nodes(r);
  GraphBuilder b("stream_test");
  b.add<ChunkSource>("video", {{"kind", "video"}, {"count", int64_t{6}}});
  b.add<ChunkSource>("audio", {{"kind", "audio"}, {"count", int64_t{6}}});
  b.add("seq", "UnifiedSequencer", {{"segment_s", 2.0}});
  auto gp = model_params(2);
  gp["stream"] = true;
  b.add("gen", "Generate", gp);
  b.connect("video.out", "seq.video").connect("audio.out", "seq.audio");
  b.connect("seq.sequence", "gen.sequence");
  b.output("seq.sequence").output("gen.text");
  auto g = b.build(r);
  std::vector<Packet> seqs, texts;
  g->observe("seq.sequence", [&](const Packet& p) { seqs.push_back(p); });
  g->observe("gen.text", [&](const Packet& p) { texts.push_back(p); });
  g->run();
  ASSERT_EQ(seqs.size(), 3u);
  EXPECT_EQ(texts.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const auto& s = seqs[i].get<FusedSequence>();
    EXPECT_EQ(s.segment, i);
    EXPECT_EQ(s.tokens.at("video"), 8);
    EXPECT_EQ(s.tokens.at("audio"), 50);
    if (i > 0) {
      EXPECT_EQ(s.positions.min().item<int64_t>(),
                seqs[i - 1].get<FusedSequence>().next_position());
    }
  }
}

// Several prompts about one clip (prompt_per_text), answered one by one from scratch, with the
// clip's tokens shared through the KV cache (share_prefix), as one batch (batch_questions), and
// with the media prefilled while it arrives (emit_partial -> prefill): the same answers and
// prompt logits.
struct Answers {
  std::vector<std::vector<int64_t>> ids;
  std::vector<at::Tensor> logits;
  std::map<std::string, int64_t> counters;
  int64_t sequences = 0, partials = 0;
};

Answers answer_three_prompts(bool share_prefix, bool batch, bool prefill) {
  Registry r;
  register_fusion_nodes(r);
  GraphBuilder b("prompts_test");
  b.add<ChunkSource>("video", {{"kind", "video"}, {"count", int64_t{5}}});
  b.add<ChunkSource>("audio", {{"kind", "audio"}, {"count", int64_t{5}}});
  b.add<ChunkSource>("prompt", {{"kind", "text"}, {"count", int64_t{3}}});
  b.add("seq", "UnifiedSequencer", {{"prompt_per_text", true}, {"emit_partial", prefill}});
  auto gp = model_params(5);
  gp["share_prefix"] = share_prefix;
  gp["batch_questions"] = batch;
  b.add("gen", "Generate", gp);
  b.connect("video.out", "seq.video").connect("audio.out", "seq.audio");
  b.connect("prompt.out", "seq.text").connect("seq.sequence", "gen.sequence");
  if (prefill) b.connect("seq.partial", "gen.prefill");
  b.output("gen.ids").output("gen.logits").output("seq.sequence").output("seq.partial");
  auto g = b.build(r);
  Answers a;
  std::mutex mu;
  g->observe("gen.ids", [&](const Packet& p) {
    std::lock_guard l(mu);
    a.ids.push_back(p.get<std::vector<int64_t>>());
  });
  g->observe("gen.logits", [&](const Packet& p) {
    std::lock_guard l(mu);
    a.logits.push_back(p.get<at::Tensor>());
  });
  g->observe("seq.sequence", [&](const Packet&) {
    std::lock_guard l(mu);
    ++a.sequences;
  });
  g->observe("seq.partial", [&](const Packet& p) {
    std::lock_guard l(mu);
    // Media only: no text, and cut before the end boundaries.
    EXPECT_NE(p.get<FusedSequence>().modality.back(), Modality::kText);
    ++a.partials;
  });
  g->run();
  a.counters = stats_of(g->stats(), "gen").counters;
  return a;
}

TEST(FusionNodes, SharedPrefixBatchAndPrefillAnswerLikeSeparatePrompts) {
  const Answers ref = answer_three_prompts(false, false, false);
  ASSERT_EQ(ref.sequences, 3);
  ASSERT_EQ(ref.ids.size(), 3u);
  ASSERT_EQ(ref.logits.size(), 3u);
  EXPECT_EQ(ref.partials, 0);
  struct Mode {
    bool share, batch, prefill;
  };
  for (const Mode m : {Mode{true, false, false}, Mode{true, true, false}, Mode{false, true, false},
                       Mode{true, false, true}, Mode{true, true, true}}) {
    const std::string name = "share_prefix=" + std::to_string(m.share) +
                             " batch_questions=" + std::to_string(m.batch) +
                             " prefill=" + std::to_string(m.prefill);
    const Answers got = answer_three_prompts(m.share, m.batch, m.prefill);
    ASSERT_EQ(got.ids.size(), 3u) << name;
    ASSERT_EQ(got.logits.size(), 3u) << name;
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(got.ids[i], ref.ids[i]) << name << " prompt " << i;
      EXPECT_LE((got.logits[i] - ref.logits[i]).abs().max().item<double>(), 1e-5)
          << name << " prompt " << i;
    }
    const auto counter = [&](const char* k) {
      auto it = got.counters.find(k);
      return it == got.counters.end() ? int64_t{0} : it->second;
    };
    if (m.share && (!m.batch || m.prefill)) {
      // The clip ran once: each later prompt (or the batch after a prefill) reused its cache.
      EXPECT_GT(counter("reused_tokens"), 0) << name;
    }
    if (m.batch) {
      EXPECT_EQ(counter("batches"), 1) << name;
    }
    if (m.prefill) {
      EXPECT_GT(got.partials, 0) << name;
      EXPECT_GT(counter("prefilled_tokens"), 0) << name;
      EXPECT_EQ(counter("prefill_mismatch"), 0) << name;
    }
  }
}

TEST(FusionNodes, PrefillNeedsSharePrefixAndStreamExcludesIt) {
  Registry r;
  register_fusion_nodes(r);
  auto build = [&](bool share, bool stream) {
    GraphBuilder b("bad");
    b.add<ChunkSource>("video", {{"kind", "video"}});
    b.add("seq", "UnifiedSequencer", {{"emit_partial", true}});
    auto gp = model_params();
    gp["share_prefix"] = share;
    gp["stream"] = stream;
    b.add("gen", "Generate", gp);
    b.connect("video.out", "seq.video")
        .connect("seq.sequence", "gen.sequence")
        .connect("seq.partial", "gen.prefill");
    b.build(r)->run();
  };
  EXPECT_THROW(build(false, false), RunError);
  EXPECT_THROW(build(true, true), RunError);
  EXPECT_NO_THROW(build(true, false));
}

TEST(FusionNodes, ConfigErrorsNameTheNode) {
  Registry r;
  register_fusion_nodes(r);
  GraphBuilder b("bad");
  b.add<ChunkSource>("video", {});
  b.add("seq", "UnifiedSequencer", {{"text_position", "middle"}});
  b.connect("video.out", "seq.video");
  auto g = b.build(r);
  try {
    g->run();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text_position"), std::string::npos) << e.what();
  }
  GraphBuilder b2("bad2");
  b2.add<ChunkSource>("video", {{"dim", int64_t{16}}});
  b2.add("seq", "UnifiedSequencer", {});
  b2.add("gen", "Generate", model_params());
  b2.connect("video.out", "seq.video").connect("seq.sequence", "gen.sequence");
  auto g2 = b2.build(r);
  try {
    g2->run();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out_dim"), std::string::npos) << e.what();
  }
}

// Errors in open() carry exactly one context prefix (the runtime's) and name the parameter.
TEST(FusionNodes, OpenErrorsHaveOnePrefixNamingTheParameter) {
  Registry r;
  register_fusion_nodes(r);
  const auto open_error = [&](std::map<std::string, ParamValue> params) {
    GraphBuilder b("bad");
    b.add<ChunkSource>("video", {});
    b.add("seq", "UnifiedSequencer", {});
    b.add("gen", "Generate", std::move(params));
    b.connect("video.out", "seq.video").connect("seq.sequence", "gen.sequence");
    try {
      b.build(r)->run();
    } catch (const RunError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kConfig) << e.what();
      return std::string(e.what());
    }
    ADD_FAILURE() << "expected a RunError";
    return std::string();
  };
  auto params = model_params();
  params["decoding"] = std::string("beam");
  std::string m = open_error(params);
  EXPECT_EQ(m.rfind("node 'gen' (Generate) failed in open(): decoding must be greedy or sample", 0),
            0u)
      << m;
  EXPECT_EQ(m.find("gen", m.find("open()")), std::string::npos) << m;  // no second prefix
  params = model_params();
  params["device"] = std::string("tpu");
  m = open_error(params);
  EXPECT_EQ(
      m.rfind("node 'gen' (Generate) failed in open(): param 'device': unknown device 'tpu'", 0),
      0u)
      << m;
  params = model_params();
  params["stop_tokens"] = std::string("258,x");
  m = open_error(params);
  EXPECT_NE(m.find("failed in open(): param 'stop_tokens': 'x' is not an integer"),
            std::string::npos)
      << m;
}

// Random-init seeding uses a generator of its own: running a graph whose Generate node draws its
// weights from `seed` leaves torch's global random sequence where it was, and the answer does not
// depend on that global state.
TEST(FusionNodes, SeededInitLeavesTorchRandnUntouched) {
  Registry r;
  register_fusion_nodes(r);
  auto answer = [&] {
    GraphBuilder b("seed_test");
    b.add<ChunkSource>("prompt", {{"kind", "text"}, {"count", int64_t{1}}});  // no random draws
    b.add("seq", "UnifiedSequencer");
    b.add("gen", "Generate", model_params());
    b.connect("prompt.out", "seq.text").connect("seq.sequence", "gen.sequence");
    b.output("gen.ids");
    auto g = b.build(r);
    std::vector<int64_t> ids;
    g->observe("gen.ids", [&](const Packet& p) { ids = p.get<std::vector<int64_t>>(); });
    g->run();
    return ids;
  };
  at::manual_seed(1234);
  const at::Tensor expected = at::randn({16});
  at::manual_seed(1234);
  const std::vector<int64_t> first = answer();
  EXPECT_TRUE(at::equal(at::randn({16}), expected)) << "the graph moved torch's global generator";
  at::manual_seed(99);  // another global state: same weights, same answer
  EXPECT_EQ(answer(), first);
  EXPECT_FALSE(first.empty());
}

}  // namespace
}  // namespace omni
