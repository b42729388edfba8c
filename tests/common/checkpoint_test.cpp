// Hugging Face checkpoint directories: the tiny Qwen2.5-Omni checkpoint that transformers wrote
// (scripts/fixtures/make_qwen_omni_checkpoint.py) loads with transformers' names, shapes, dtypes
// and values; every malformed variant (built here from the good fixture) gives a clear InputError
// and loads nothing.
#include "modalities/common/checkpoint.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

const fs::path kFixture = fs::path(OMNI_SOURCE_DIR) / "tests/fixtures/hf/qwen2_5_omni_tiny";

const nlohmann::json& facts() {
  static const nlohmann::json j = [] {
    std::ifstream f(fs::path(OMNI_SOURCE_DIR) /
                    "tests/fixtures/hf/qwen2_5_omni_tiny_reference.json");
    return nlohmann::json::parse(f);
  }();
  return j;
}

std::vector<int64_t> shape_of(const nlohmann::json& t) {
  return t.at("shape").get<std::vector<int64_t>>();
}

// A module tree built from dotted names (layers.0.fc1.weight -> module layers / 0 / fc1).
struct Tree : torch::nn::Module {};
std::shared_ptr<Tree> make_module(const std::map<std::string, std::vector<int64_t>>& shapes,
                                  at::ScalarType dtype = at::kFloat) {
  auto root = std::make_shared<Tree>();
  for (const auto& [name, shape] : shapes) {
    std::shared_ptr<torch::nn::Module> m = root;
    size_t start = 0, dot;
    while ((dot = name.find('.', start)) != std::string::npos) {
      const std::string part = name.substr(start, dot - start);
      auto children = m->named_children();
      if (children.contains(part)) {
        m = children[part];
      } else {
        m = m->register_module(part, std::make_shared<Tree>());
      }
      start = dot + 1;
    }
    m->register_parameter(name.substr(start), at::zeros(shape, at::TensorOptions().dtype(dtype)),
                          /*requires_grad=*/c10::isFloatingType(dtype));
  }
  return root;
}

// Shapes of every fixture tensor under `hub_prefix`, keyed by the name below it.
std::map<std::string, std::vector<int64_t>> fixture_shapes(const std::string& hub_prefix) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& [name, t] : facts().at("tensors").items())
    if (name.rfind(hub_prefix, 0) == 0) out[name.substr(hub_prefix.size())] = shape_of(t);
  return out;
}

bool all_zero(torch::nn::Module& m) {
  for (const auto& p : m.parameters())
    if (p.count_nonzero().item<int64_t>() != 0) return false;
  return true;
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("omni_ckpt_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::copy(kFixture, dir_);
    for (const auto& e : fs::directory_iterator(dir_))
      fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& n) const { return (dir_ / n).string(); }
  nlohmann::json read_json(const std::string& n) const {
    std::ifstream f(file(n));
    return nlohmann::json::parse(f);
  }
  void write_text(const std::string& n, const std::string& text) const {
    std::ofstream f(file(n), std::ios::binary | std::ios::trunc);
    f << text;
  }
  // Expects Checkpoint::open to fail with an InputError containing every needle.
  void expect_open_error(const std::vector<std::string>& needles) const {
    try {
      auto c = Checkpoint::open(dir_.string());
      ADD_FAILURE() << "expected an InputError";
    } catch (const InputError& e) {
      const std::string msg = e.what();
      for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << n << "\n" << msg;
    }
  }
  fs::path dir_;
};

constexpr const char* kShard1 = "model-00001-of-00003.safetensors";
constexpr const char* kShard2 = "model-00002-of-00003.safetensors";

TEST(CheckpointFixture, OpensWithTransformersNamesShapesAndDtypes) {
  auto c = Checkpoint::open(kFixture.string());
  EXPECT_EQ(c->family().name, "qwen2_5_omni");
  EXPECT_EQ(c->architecture(), facts()["architecture"]);
  EXPECT_EQ(c->model_type(), "qwen2_5_omni");
  EXPECT_TRUE(c->has_index());
  EXPECT_EQ(c->shards(), facts()["shards"].get<std::vector<std::string>>());
  const auto& tensors = facts()["tensors"];
  ASSERT_EQ(c->hub_names().size(), tensors.size());
  for (const auto& h : c->hub_names()) {
    ASSERT_TRUE(tensors.contains(h)) << h;
    const TensorInfo ti = c->hub_info(h);
    EXPECT_EQ(ti.shard, tensors[h]["shard"]) << h;
    EXPECT_EQ(safetensors_dtype_name(ti.dtype), tensors[h]["dtype"]) << h;
    EXPECT_EQ(ti.shape, shape_of(tensors[h])) << h;
  }
}

TEST(CheckpointFixture, StripsThinkerRenamesAndListsUnusedGroups) {
  auto c = Checkpoint::open(kFixture.string());
  EXPECT_EQ(c->map_name("thinker.model.layers.0.self_attn.q_proj.bias"),
            "text.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(c->map_name("thinker.lm_head.weight"), "text.lm_head.weight");
  EXPECT_EQ(c->map_name("thinker.visual.blocks.1.attn.q.weight"), "vision.blocks.1.attn.q.weight");
  EXPECT_EQ(c->map_name("thinker.audio_tower.conv1.weight"), "audio.conv1.weight");
  EXPECT_EQ(c->map_name("talker.model.norm.weight"), std::nullopt);
  EXPECT_EQ(c->unused_groups(), (std::vector<std::string>{"talker.", "token2wav."}));
  size_t thinker = 0, unused = 0;
  for (const auto& [name, t] : facts()["tensors"].items())
    (name.rfind("thinker.", 0) == 0 ? thinker : unused) += 1;
  EXPECT_EQ(c->names().size(), thinker);
  EXPECT_EQ(c->unused_hub_names().size(), unused);
  for (const auto& n : c->names())
    EXPECT_TRUE(n.rfind("text.", 0) == 0 || n.rfind("vision.", 0) == 0 || n.rfind("audio.", 0) == 0)
        << n;
  EXPECT_TRUE(c->contains("text.embed_tokens.weight"));
  EXPECT_EQ(c->info("vision.merger.ln_q.weight").hub_name, "thinker.visual.merger.ln_q.weight");
  EXPECT_THROW(c->info("talker.model.norm.weight"), InputError);
  EXPECT_THROW(c->get("text.no_such.weight"), InputError);
}

TEST(CheckpointFixture, ValuesEqualWhatTransformersSaved) {
  auto c = Checkpoint::open(kFixture.string());
  int checked = 0;
  for (const auto& [hub, s] : facts()["samples"].items()) {
    at::Tensor t = c->hub_get(hub);
    EXPECT_EQ(safetensors_dtype_name(t.scalar_type()), s["dtype"]) << hub;
    EXPECT_EQ(t.sizes().vec(), shape_of(s)) << hub;
    at::Tensor d = t.to(at::kDouble).reshape(-1);
    const auto first = s["first"].get<std::vector<double>>();
    for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(d[i].item<double>(), first[i]) << hub;
    EXPECT_NEAR(d.sum().item<double>(), s["sum"].get<double>(), 1e-9 * s["abs_sum"].get<double>())
        << hub;
    EXPECT_NEAR(d.abs().sum().item<double>(), s["abs_sum"].get<double>(),
                1e-9 * s["abs_sum"].get<double>())
        << hub;
    if (auto ours = c->map_name(hub)) {
      EXPECT_TRUE(c->get(*ours).equal(t)) << hub;
    }
    ++checked;
  }
  EXPECT_GE(checked, 9);
  // A perturbed fixture: biases are not 0 and norms are not 1.
  EXPECT_NE(c->get("text.layers.1.self_attn.q_proj.bias").abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(c->get("text.norm.weight").equal(at::ones({32})));
}

TEST(CheckpointFixture, ConvertsDtypesOnRequest) {
  auto c = Checkpoint::open(kFixture.string());
  const std::string bf = "talker.model.norm.weight";                           // stored BF16
  const std::string h = "token2wav.code2wav_dit_model.input_embed.proj.bias";  // stored F16
  const at::Tensor f32 = c->get("text.norm.weight");                           // stored F32
  EXPECT_EQ(c->hub_get(bf).scalar_type(), at::kBFloat16);
  EXPECT_EQ(c->hub_get(h).scalar_type(), at::kHalf);
  at::Tensor a = c->hub_get(bf, {at::kFloat});
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  EXPECT_TRUE(a.equal(c->hub_get(bf).to(at::kFloat)));
  EXPECT_EQ(c->hub_get(h, {at::kFloat}).scalar_type(), at::kFloat);
  EXPECT_EQ(c->hub_get(h, {at::kBFloat16}).scalar_type(), at::kBFloat16);
  at::Tensor b = c->get("text.norm.weight", {at::kBFloat16});
  EXPECT_EQ(b.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(b.equal(f32.to(at::kBFloat16)));
  // keep_bf16: bf16 stays, everything else converts.
  EXPECT_EQ(c->hub_get(bf, {at::kFloat, true}).scalar_type(), at::kBFloat16);
  EXPECT_EQ(c->hub_get(h, {at::kFloat, true}).scalar_type(), at::kFloat);
  EXPECT_THROW(c->get("text.norm.weight", {at::kLong}), InputError);
}

TEST(CheckpointFixture, ReadsTowerConfigsAndGenerationConfig) {
  auto c = Checkpoint::open(kFixture.string());
  EXPECT_EQ(c->towers(), (std::vector<std::string>{"text", "vision", "audio", "talker"}));
  const auto& f = facts();
  for (const char* tower : {"text", "vision", "audio"}) {
    const TowerSummary s = c->tower_summary(tower);
    for (const char* k : {"layers", "hidden", "heads", "intermediate"})
      EXPECT_EQ(s.ints.at(k), f[tower][k].get<int64_t>()) << tower << " " << k;
  }
  const TowerSummary text = c->tower_summary("text");
  EXPECT_EQ(text.ints.at("kv_heads"), f["text"]["kv_heads"].get<int64_t>());
  EXPECT_EQ(text.ints.at("vocab"), f["text"]["vocab"].get<int64_t>());
  EXPECT_EQ(text.ints.at("head_dim"), 8);
  EXPECT_EQ(text.floats.at("rope_theta"), f["text"]["rope_theta"].get<double>());
  EXPECT_EQ(text.floats.at("rms_norm_eps"), f["text"]["rms_norm_eps"].get<double>());
  EXPECT_EQ(text.lists.at("mrope_section"), f["text"]["mrope_section"].get<std::vector<int64_t>>());
  EXPECT_EQ(text.flags.at("tie_word_embeddings"), false);
  EXPECT_EQ(c->tower_summary("vision").lists.at("fullatt_block_indexes"),
            f["vision"]["fullatt_block_indexes"].get<std::vector<int64_t>>());
  EXPECT_EQ(c->tower_summary("vision").ints.at("out_hidden"),
            f["vision"]["out_hidden"].get<int64_t>());
  EXPECT_EQ(c->tower_summary("audio").ints.at("n_window"), f["audio"]["n_window"].get<int64_t>());
  EXPECT_EQ(c->tower_summary("audio").ints.at("num_mel_bins"), 128);
  EXPECT_EQ(c->eos_token_ids(), f["eos_token_ids"].get<std::vector<int64_t>>());
  EXPECT_EQ(c->pad_token_id(), f["pad_token_id"].get<int64_t>());
  ASSERT_NE(c->tower_config("text"), nullptr);
  EXPECT_EQ((*c->tower_config("text"))["model_type"], "qwen2_5_omni_text");
  EXPECT_EQ(c->tower_config("nope"), nullptr);
}

TEST(CheckpointFixture, LoadsIntoModulesPerTowerWithConversion) {
  auto c = Checkpoint::open(kFixture.string());
  auto audio = make_module(fixture_shapes("thinker.audio_tower."));
  const LoadReport r = c->load_into(*audio, {"audio."});
  EXPECT_EQ(r.tensors, static_cast<int64_t>(fixture_shapes("thinker.audio_tower.").size()));
  EXPECT_EQ(r.skipped_unused, (std::vector<std::string>{"talker.", "token2wav."}));
  for (const auto& item : audio->named_parameters())
    EXPECT_TRUE(item.value().equal(c->get("audio." + item.key()))) << item.key();

  // A bf16 module: fp32 weights convert on copy. A computed buffer may be absent.
  auto text = make_module(fixture_shapes("thinker.model."), at::kBFloat16);
  auto head = make_module({{"weight", {512, 32}}}, at::kBFloat16);
  text->register_module("lm_head", head);
  text->register_module("rotary_emb", std::make_shared<Tree>())
      ->register_buffer("inv_freq", at::ones({4}));
  LoadOptions opt{"text."};
  opt.ignore_missing = {"inv_freq"};
  EXPECT_THROW(c->load_into(*text, {"text."}), InputError);  // inv_freq is missing
  EXPECT_EQ(c->load_into(*text, opt).tensors,
            static_cast<int64_t>(fixture_shapes("thinker.model.").size() + 1));
  EXPECT_TRUE(
      head->named_parameters()["weight"].equal(c->get("text.lm_head.weight").to(at::kBFloat16)));
}

// ---- zero-copy loading (LoadOptions::map_weights) ----

// Same dtype: every parameter is re-pointed at the mapped bytes (its data_ptr lies inside the
// mapping), stays the module's own tensor object (members and parameter lists see it), and
// outlives the Checkpoint that mapped it. Nothing is copied.
TEST(CheckpointFixture, MapsWeightsInPlaceWhenDtypesMatch) {
  const auto shapes = fixture_shapes("thinker.audio_tower.");  // all F32 in the fixture
  auto module = make_module(shapes);
  std::map<std::string, at::Tensor> before;  // the tensor objects, not their values
  for (const auto& item : module->named_parameters()) before[item.key()] = item.value();
  {
    auto c = Checkpoint::open(kFixture.string());
    const LoadReport r = c->load_into(*module, {"audio."});
    EXPECT_EQ(r.tensors, static_cast<int64_t>(shapes.size()));
    EXPECT_EQ(r.mapped_tensors, r.tensors);
    EXPECT_EQ(r.mapped_bytes, r.bytes);
    for (const auto& item : module->named_parameters()) {
      EXPECT_TRUE(c->maps(item.value())) << item.key();
      EXPECT_TRUE(item.value().is_same(before.at(item.key()))) << item.key();
      EXPECT_TRUE(item.value().requires_grad()) << item.key();
    }
  }  // the Checkpoint and its SafeTensorsFiles are gone; the mapping lives on in the tensors
  auto fresh = Checkpoint::open(kFixture.string());
  for (const auto& item : module->named_parameters()) {
    EXPECT_TRUE(fresh->maps(item.value())) << item.key();  // a mapping of the same files
    EXPECT_TRUE(item.value().equal(fresh->get("audio." + item.key()))) << item.key();
  }
}

// Converting (fp32 file, bf16 module), opted out, or a destination whose storage another tensor
// shares: copies, and the data stays outside the mapping.
TEST(CheckpointFixture, CopiesWhenConvertingOptedOutOrShared) {
  auto c = Checkpoint::open(kFixture.string());
  const auto shapes = fixture_shapes("thinker.audio_tower.");
  auto bf16 = make_module(shapes, at::kBFloat16);
  const LoadReport r = c->load_into(*bf16, {"audio."});
  EXPECT_EQ(r.tensors, static_cast<int64_t>(shapes.size()));
  EXPECT_EQ(r.mapped_tensors, 0);
  for (const auto& item : bf16->named_parameters()) {
    EXPECT_FALSE(c->maps(item.value())) << item.key();
    EXPECT_TRUE(item.value().equal(c->get("audio." + item.key()).to(at::kBFloat16)));
  }

  auto off = make_module(shapes);
  LoadOptions opt{"audio."};
  opt.map_weights = false;
  EXPECT_EQ(c->load_into(*off, opt).mapped_tensors, 0);
  for (const auto& item : off->named_parameters()) {
    EXPECT_FALSE(c->maps(item.value())) << item.key();
    EXPECT_TRUE(item.value().equal(c->get("audio." + item.key()))) << item.key();
  }

  // Explicit destinations: a whole tensor is mapped; one that is a view of a bigger buffer, or
  // whose storage an alias shares, receives a copy so the buffer / alias sees the values.
  const std::string a = "audio.conv1.bias", b = "audio.conv2.bias", d = "audio.ln_post.bias";
  const int64_t n = c->info(a).shape.at(0);
  at::Tensor whole = at::zeros({n});
  at::Tensor buffer = at::zeros({2 * n});
  at::Tensor view = buffer.narrow(0, n, n);
  at::Tensor shared = at::zeros({n});
  const at::Tensor alias = shared.detach();  // another tensor object on the same storage
  LoadOptions all{""};
  all.allow_unexpected = true;
  const LoadReport e = c->load_into({{a, whole}, {b, view}, {d, shared}}, all);
  EXPECT_EQ(e.tensors, 3);
  EXPECT_EQ(e.mapped_tensors, 1);
  EXPECT_TRUE(c->maps(whole));
  EXPECT_TRUE(whole.equal(c->get(a)));
  EXPECT_TRUE(buffer.narrow(0, n, n).equal(c->get(b)));
  EXPECT_TRUE(alias.equal(c->get(d)));
}

// The mappings are copy on write and each load_into call has its own: a write to a weight used
// in place changes that module's weight only; get(), a module loaded by another call and the
// file keep the original bytes.
TEST_F(CheckpointTest, WritesToMappedWeightsStayPrivate) {
  auto c = Checkpoint::open(dir_.string());
  const auto shapes = fixture_shapes("thinker.audio_tower.");
  auto m = make_module(shapes), other = make_module(shapes);
  ASSERT_EQ(c->load_into(*m, {"audio."}).mapped_tensors, static_cast<int64_t>(shapes.size()));
  ASSERT_EQ(c->load_into(*other, {"audio."}).mapped_tensors, static_cast<int64_t>(shapes.size()));
  const at::Tensor original = c->get("audio.proj.weight").clone();
  at::Tensor w = m->named_parameters()["proj.weight"];
  {
    at::NoGradGuard no_grad;
    w.add_(1.0);
  }
  EXPECT_TRUE(w.equal(original + 1.0));
  EXPECT_TRUE(other->named_parameters()["proj.weight"].equal(original));
  EXPECT_TRUE(c->get("audio.proj.weight").equal(original));
  EXPECT_TRUE(Checkpoint::open(dir_.string())->get("audio.proj.weight").equal(original));
}

// A tensor stored at an offset that is not a multiple of its element size (other writers do
// that) cannot be viewed in place: it is copied, with the right values.
TEST_F(CheckpointTest, MisalignedTensorIsCopied) {
  for (const auto& e : fs::directory_iterator(dir_)) fs::remove(e.path());
  write_text("config.json", R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
    "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1, "num_key_value_heads": 1,
    "vocab_size": 2})");
  // Header padded so the data region starts 8-aligned; a 1-byte U8 tensor first puts the F32
  // tensor at data offset 1.
  std::string header = R"({"model.a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[1,17]}})";
  while ((8 + header.size()) % 8 != 0) header.push_back(' ');
  const float values[4] = {1.5f, -2.0f, 0.25f, 3.0f};
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  bytes += header;
  bytes.push_back(7);
  bytes.append(reinterpret_cast<const char*>(values), sizeof values);
  write_text("model.safetensors", bytes);
  auto c = Checkpoint::open(dir_.string());
  auto m = make_module({{"norm.weight", {4}}});
  LoadOptions opt{"text."};
  opt.allow_unexpected = true;
  const LoadReport r = c->load_into(*m, opt);
  EXPECT_EQ(r.tensors, 1);
  EXPECT_EQ(r.mapped_tensors, 0);
  const at::Tensor w = m->named_parameters()["norm.weight"];
  EXPECT_FALSE(c->maps(w));
  EXPECT_TRUE(w.equal(at::tensor({1.5f, -2.0f, 0.25f, 3.0f})));
}

// ---- malformed variants: each gives its error and loads nothing ----

TEST_F(CheckpointTest, MissingShard) {
  fs::remove(dir_ / kShard2);
  expect_open_error({"missing shard '" + std::string(kShard2) + "'", "thinker.", dir_.string()});
}

TEST_F(CheckpointTest, TensorInIndexAbsentFromItsShard) {
  auto idx = read_json("model.safetensors.index.json");
  idx["weight_map"]["thinker.model.layers.9.mlp.up_proj.weight"] = kShard1;
  write_text("model.safetensors.index.json", idx.dump());
  expect_open_error({"shard '" + std::string(kShard1) + "' does not contain",
                     "'thinker.model.layers.9.mlp.up_proj.weight'"});
}

TEST_F(CheckpointTest, TensorInShardMissingFromIndex) {
  auto idx = read_json("model.safetensors.index.json");
  const std::string first = facts()["tensors"].begin().key();
  const std::string shard = facts()["tensors"][first]["shard"];
  idx["weight_map"].erase(first);
  write_text("model.safetensors.index.json", idx.dump());
  expect_open_error(
      {"shard '" + shard + "' holds 1 tensor(s) that the index does not list", first});
}

TEST_F(CheckpointTest, MalformedIndexJson) {
  std::ifstream f(file("model.safetensors.index.json"));
  std::string text((std::istreambuf_iterator<char>(f)), {});
  write_text("model.safetensors.index.json", text.substr(0, text.size() / 2));
  expect_open_error({"model.safetensors.index.json", "malformed JSON"});
  write_text("model.safetensors.index.json", R"({"metadata": {}, "weight_map": [1, 2]})");
  expect_open_error({"malformed index: no \"weight_map\" object"});
  write_text("model.safetensors.index.json", R"({"weight_map": {"a.weight": 3}})");
  expect_open_error({"malformed index", "'a.weight'", "not a string"});
  write_text("model.safetensors.index.json", R"({"weight_map": {"a.weight": "../config.json"}})");
  expect_open_error({"'../config.json'", "not a plain file name"});
  write_text("model.safetensors.index.json", R"({"weight_map": {}})");
  expect_open_error({"\"weight_map\" is empty"});
}

// Rewrites one tensor's shape in a shard's header (the data stays), so the header lies.
void lie_about_shape(const std::string& path, const std::string& tensor,
                     std::vector<int64_t> shape) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  in.close();
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  header[tensor]["shape"] = shape;
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((h.size() >> (8 * i)) & 0xff));
  out << h << bytes.substr(8 + n);
}

TEST_F(CheckpointTest, LyingSafetensorsHeader) {
  const std::string name = "thinker.model.embed_tokens.weight";
  const std::string shard = facts()["tensors"][name]["shard"];
  lie_about_shape(file(shard), name, {512, 64});
  expect_open_error({"shard '" + shard + "'", name, "[512,64]", "needs 131072 bytes"});
}

TEST_F(CheckpointTest, TruncatedShard) {
  fs::resize_file(dir_ / kShard2, fs::file_size(dir_ / kShard2) - 100);
  expect_open_error({"shard '" + std::string(kShard2) + "'", "outside the data region"});
}

TEST_F(CheckpointTest, MissingConfigOrWeights) {
  fs::remove(dir_ / "config.json");
  expect_open_error({"no config.json"});
  write_text("config.json", "{\"model_type\": \"qwen2\"");
  expect_open_error({"config.json", "malformed JSON"});
  write_text("config.json", "{\"model_type\": \"qwen2\"}");
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().filename().string().rfind("model", 0) == 0) fs::remove(e.path());
  write_text("pytorch_model.bin", "x");
  expect_open_error({"no weights", "pytorch_model.bin", "only safetensors"});
  // A JSON file larger than any config is refused before it is read.
  fs::resize_file(dir_ / "config.json", 17ull << 20);
  expect_open_error({"config.json", "exceeds the bound"});
}

TEST_F(CheckpointTest, ShapeMismatchAgainstModuleLoadsNothing) {
  auto c = Checkpoint::open(dir_.string());
  auto shapes = fixture_shapes("thinker.audio_tower.");
  shapes["conv1.bias"] = {17};
  auto m = make_module(shapes);
  try {
    c->load_into(*m, {"audio."});
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    for (const std::string n :
         {"'audio.conv1.bias'", "hub 'thinker.audio_tower.conv1.bias'", "shard 'model-0000",
          "checkpoint has [16] F32", "module expects [17] F32", "nothing was loaded"})
      EXPECT_NE(msg.find(n), std::string::npos) << n << "\n" << msg;
  }
  EXPECT_TRUE(all_zero(*m));
}

TEST_F(CheckpointTest, MissingAndUnexpectedTensorsLoadNothing) {
  auto c = Checkpoint::open(dir_.string());
  auto shapes = fixture_shapes("thinker.audio_tower.");
  shapes.erase("ln_post.bias");
  shapes["extra.weight"] = {3, 4};
  auto m = make_module(shapes);
  try {
    c->load_into(*m, {"audio."});
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    for (const std::string n :
         {"missing tensors (1): 'audio.extra.weight' (module expects [3,4] F32)",
          "unexpected tensors (1): 'audio.ln_post.bias' (hub "
          "'thinker.audio_tower.ln_post.bias' in shard"})
      EXPECT_NE(msg.find(n), std::string::npos) << n << "\n" << msg;
  }
  EXPECT_TRUE(all_zero(*m));
  // Unexpected tensors may be allowed explicitly; missing ones may not.
  shapes.erase("extra.weight");
  auto ok = make_module(shapes);
  LoadOptions opt{"audio."};
  opt.allow_unexpected = true;
  EXPECT_EQ(c->load_into(*ok, opt).tensors, static_cast<int64_t>(shapes.size()));
  // An integer module tensor does not take float weights.
  auto bad = make_module({{"conv1.bias", {16}}}, at::kLong);
  EXPECT_THROW(c->load_into(*bad, opt), InputError);
  EXPECT_TRUE(all_zero(*bad));
}

TEST_F(CheckpointTest, GenerationConfigEosIntListOrBad) {
  write_text("generation_config.json", R"({"eos_token_id": 7})");
  EXPECT_EQ(Checkpoint::open(dir_.string())->eos_token_ids(), (std::vector<int64_t>{7}));
  write_text("generation_config.json", R"({"eos_token_id": "x"})");
  EXPECT_THROW(Checkpoint::open(dir_.string())->eos_token_ids(), InputError);
  fs::remove(dir_ / "generation_config.json");
  auto c = Checkpoint::open(dir_.string());
  EXPECT_TRUE(c->generation_config().empty());
  EXPECT_TRUE(c->eos_token_ids().empty());  // the tiny text config sets none
}

// A flat single-file checkpoint (Qwen2ForCausalLM layout) with bf16 and fp16 tensors and tied
// embeddings.
TEST_F(CheckpointTest, SingleFileFlatConfigTiedEmbeddings) {
  for (const auto& e : fs::directory_iterator(dir_)) fs::remove(e.path());
  write_text("config.json", R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
    "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
    "vocab_size": 6, "rope_theta": 10000.0, "tie_word_embeddings": true, "eos_token_id": 5})");
  const at::Tensor emb = at::arange(48, at::kFloat).reshape({6, 8}).div(7).to(at::kBFloat16);
  const at::Tensor norm = at::linspace(0.5, 1.5, 8).to(at::kHalf);
  save_safetensors(file("model.safetensors"),
                   {{"model.embed_tokens.weight", emb}, {"model.norm.weight", norm}});
  auto c = Checkpoint::open(dir_.string());
  EXPECT_EQ(c->family().name, "qwen2");
  EXPECT_FALSE(c->has_index());
  EXPECT_EQ(c->shards(), (std::vector<std::string>{"model.safetensors"}));
  EXPECT_EQ(c->tower_summary("text").ints.at("head_dim"), 4);
  EXPECT_EQ(c->tower_summary("text").floats.at("rope_theta"), 10000.0);
  EXPECT_EQ(c->eos_token_ids(), (std::vector<int64_t>{5}));
  EXPECT_TRUE(c->unused_groups().empty());
  EXPECT_TRUE(c->get("text.lm_head.weight").equal(emb));  // tied
  auto m = make_module(
      {{"embed_tokens.weight", {6, 8}}, {"norm.weight", {8}}, {"lm_head.weight", {6, 8}}});
  EXPECT_EQ(c->load_into(*m, {"text."}).tensors, 3);
  auto p = m->named_parameters();
  EXPECT_TRUE(p["embed_tokens.weight"].equal(emb.to(at::kFloat)));
  EXPECT_TRUE(p["lm_head.weight"].equal(emb.to(at::kFloat)));
  EXPECT_TRUE(p["norm.weight"].equal(norm.to(at::kFloat)));
  // A module whose head is tied too (no lm_head) does not call the alias unexpected.
  auto tied = make_module({{"embed_tokens.weight", {6, 8}}, {"norm.weight", {8}}});
  EXPECT_EQ(c->load_into(*tied, {"text."}).tensors, 2);
}

TEST_F(CheckpointTest, FamilyFromModelTypeOrGeneric) {
  auto cfg = read_json("config.json");
  cfg.erase("architectures");
  write_text("config.json", cfg.dump());
  EXPECT_EQ(Checkpoint::open(dir_.string())->family().name, "qwen2_5_omni");  // by model_type
  cfg["model_type"] = "something_new";
  write_text("config.json", cfg.dump());
  auto c = Checkpoint::open(dir_.string());
  EXPECT_EQ(c->family().name, "generic");  // loads with hub names, nothing skipped
  EXPECT_EQ(c->names(), c->hub_names());
  EXPECT_TRUE(c->unused_groups().empty());
  EXPECT_EQ(c->tower_summary("text").ints.at("hidden"), 32);  // thinker_config.text_config
}

TEST_F(CheckpointTest, GarbageShard) {
  write_text(kShard2, "not a safetensors file at all");
  expect_open_error({"shard '" + std::string(kShard2) + "'", "header length"});
}

}  // namespace
}  // namespace omni
