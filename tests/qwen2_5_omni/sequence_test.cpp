// The Qwen2.5-Omni prompt layout against transformers (fixture: tests/fixtures/hf/qwen2_5_omni_e2e,
// made by scripts/fixtures/make_qwen_omni_e2e.py with transformers + qwen-omni-utils): for every
// case our rendered prompt, prompt ids, processor outputs (pixel_values, input_features, grids,
// token counts), expanded input_ids, position ids and rope delta, computed from the committed
// inputs with OUR readers and processors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/audio/whisper_features.h"
#include "modalities/common/safetensors.h"
#include "modalities/image/qwen_vision.h"
#include "modalities/media/image_reader.h"
#include "modalities/media/media_reader.h"
#include "modalities/text/hf_tokenizer.h"
#include "models/qwen2_5_omni/sequence.h"

namespace omni::qwen {
namespace {

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/hf/qwen2_5_omni_e2e/";

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("missing " + path);
  return nlohmann::json::parse(f);
}

struct Case {
  std::string name;
  nlohmann::json info;
  TensorMap t;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  const nlohmann::json manifest = read_json(kDir + "reference/manifest.json");
  for (const auto& n : manifest.at("cases")) {
    Case c;
    c.name = n.get<std::string>();
    c.info = read_json(kDir + "reference/" + c.name + ".json");
    c.t = SafeTensorsFile::open(kDir + "reference/" + c.name + ".safetensors")->all();
    out.push_back(std::move(c));
  }
  if (out.size() != 6) throw std::runtime_error("the fixture should have 6 cases");
  return out;
}

Case find_case(const std::string& name) {
  for (Case& c : cases())
    if (c.name == name) return c;
  throw std::runtime_error("no case " + name);
}

std::vector<int64_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int64_t>>(); }

std::array<int64_t, 3> grid_of(const nlohmann::json& j) {
  const auto v = j.get<std::vector<int64_t>>();
  return {v.at(0), v.at(1), v.at(2)};
}

LayoutOptions layout_options() {
  return LayoutOptions::from_config(read_json(kDir + "config.json"));
}

PromptRequest request_of(const Case& c) {
  PromptRequest r;
  if (!c.info["system"].is_null()) r.system = c.info["system"].get<std::string>();
  const auto& media = c.info["media"];
  const std::string m = media.is_null() ? "" : media.get<std::string>();
  r.media = m.empty()      ? PromptMedia::kNone
            : m == "image" ? PromptMedia::kImage
            : m == "audio" ? PromptMedia::kAudio
                           : PromptMedia::kVideo;
  r.question = c.info["question"].get<std::string>();
  return r;
}

// The media descriptions straight from transformers' outputs (grids, counts): the layout alone.
std::vector<MediaLayout> reference_media(const Case& c) {
  const auto& i = c.info;
  if (i.contains("image_grid_thw")) return {MediaLayout::image(grid_of(i["image_grid_thw"]))};
  if (i.contains("video_grid_thw")) {
    const auto g = grid_of(i["video_grid_thw"]);
    const double spg = i["video_second_per_grid"].get<double>();
    if (i["use_audio_in_video"].get<bool>())
      return {MediaLayout::video_with_audio(g, spg, i["audio_tokens"].get<int64_t>())};
    return {MediaLayout::video(g, spg)};
  }
  if (i["audio_tokens"].get<int64_t>() > 0)
    return {MediaLayout::audio(i["audio_tokens"].get<int64_t>())};
  return {};
}

void expect_matches(const Sequence& s, const Case& c) {
  EXPECT_EQ(s.input_ids, ids_of(c.info["input_ids"]));
  const at::Tensor ref = c.t.at("position_ids");
  ASSERT_EQ(s.position_ids.sizes(), ref.sizes());
  if (!at::equal(s.position_ids, ref)) {
    const at::Tensor bad = (s.position_ids != ref).any(0).nonzero();
    const int64_t k = bad[0][0].item<int64_t>();
    ADD_FAILURE() << "position ids differ first at token " << k << ": ours ("
                  << s.position_ids[0][k].item<int64_t>() << ", "
                  << s.position_ids[1][k].item<int64_t>() << ", "
                  << s.position_ids[2][k].item<int64_t>() << ") transformers ("
                  << ref[0][k].item<int64_t>() << ", " << ref[1][k].item<int64_t>() << ", "
                  << ref[2][k].item<int64_t>() << ")";
  }
  EXPECT_EQ(s.rope_delta, c.info["rope_delta"].get<int64_t>());
  EXPECT_TRUE(at::equal(at::tensor(s.input_ids, at::kLong), c.t.at("input_ids")));
}

// The whole file's audio: mono float at 16 kHz.
std::vector<float> read_audio(const std::string& path) {
  MediaReaderOptions o;
  o.path = path;
  o.video = false;
  o.audio = true;
  o.audio_rate = 16000;
  o.audio_channels = 1;
  MediaReader r(o);
  std::vector<float> pcm;
  MediaReader::Item it;
  while (r.next(it))
    if (it.kind == MediaReader::Item::Kind::kAudio)
      pcm.insert(pcm.end(), it.audio.samples.begin(), it.audio.samples.end());
  return pcm;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Our features of `pcm` against the case's input_features (valid frames + the stored padded
// ones, then the constant tail). Returns the token count.
int64_t check_audio(const std::vector<float>& pcm, const Case& c, const nlohmann::json& pre,
                    double tol) {
  const auto& i = c.info;
  EXPECT_EQ(static_cast<int64_t>(pcm.size()), i["audio_samples"].get<int64_t>());
  const WhisperFeatureOptions wo = WhisperFeatureOptions::from_config(pre);
  const WhisperFeatures f = whisper_features(pcm.data(), static_cast<int64_t>(pcm.size()), wo);
  const auto shape = i["input_features_shape"].get<std::vector<int64_t>>();
  EXPECT_EQ(f.input_features.size(0), shape.at(0));
  EXPECT_EQ(f.frames, shape.at(1));
  EXPECT_EQ(f.valid_frames, i["audio_valid_frames"].get<int64_t>());
  const int64_t stored = i["input_features_stored_frames"].get<int64_t>();
  const at::Tensor ref = c.t.at("input_features");
  const double d = max_abs(f.input_features.slice(1, 0, stored), ref);
  const double tail = i["input_features_tail_value"].get<double>();
  const double dt =
      (f.input_features.slice(1, stored).to(at::kDouble) - tail).abs().max().item<double>();
  std::printf("[ %s ] input_features max |diff| %.3g (tail %.3g)\n", c.name.c_str(), d, dt);
  EXPECT_LE(d, tol);
  EXPECT_LE(dt, tol);
  return qwen_audio_tokens(f.valid_frames);
}

// Our readers and processors on the committed inputs -> the media descriptions.
std::vector<MediaLayout> our_media(const Case& c, const nlohmann::json& pre) {
  const auto& i = c.info;
  const auto& media = i["media"];
  if (media.is_null()) return {};
  const std::string m = media.get<std::string>();
  if (m == "image") {
    const cv::Mat rgb = load_image_rgb(kDir + "image.png");
    const QwenVisualInputs in =
        qwen_image_inputs(rgb.ptr<uint8_t>(0), rgb.cols, rgb.rows,
                          static_cast<int64_t>(rgb.step[0]), QwenVisionOptions::from_config(pre));
    EXPECT_EQ(in.grid_thw, grid_of(i["image_grid_thw"]));
    EXPECT_EQ(in.num_tokens(), i["image_tokens"].get<int64_t>());
    const at::Tensor ref = c.t.at("pixel_values");
    EXPECT_EQ(in.pixel_values.sizes(), ref.sizes());
    if (in.pixel_values.sizes() == ref.sizes()) {
      const double d = max_abs(in.pixel_values, ref);
      std::printf("[ %s ] pixel_values max |diff| %.3g\n", c.name.c_str(), d);
      EXPECT_LE(d, 1e-5);  // tests/image/qwen_processor_test.cpp's bound
    }
    return {MediaLayout::image(in.grid_thw)};
  }
  if (m == "audio") {
    const int64_t n = check_audio(read_audio(kDir + "speech.wav"), c, pre, 1e-4);
    EXPECT_EQ(n, i["audio_tokens"].get<int64_t>());
    return {MediaLayout::audio(n)};
  }
  const std::string file = m == "video_audio" ? "video_audio.mp4" : "video.mp4";
  const QwenVideoInputs v = qwen_video_inputs(kDir + file, QwenVideoOptions::from_config(pre));
  EXPECT_EQ(v.grid_thw, grid_of(i["video_grid_thw"]));
  EXPECT_DOUBLE_EQ(v.second_per_grid, i["video_second_per_grid"].get<double>());
  const auto shape = i["pixel_values_videos_shape"].get<std::vector<int64_t>>();
  EXPECT_EQ(v.pixel_values.size(0), shape.at(0));
  if (c.t.count("pixel_values_videos") && v.pixel_values.size(0) == shape.at(0)) {
    const int64_t step = i["pixel_rows_step"].get<int64_t>();
    const at::Tensor ours = v.pixel_values.slice(0, 0, v.pixel_values.size(0), step);
    const double d = max_abs(ours, c.t.at("pixel_values_videos"));
    std::printf("[ %s ] pixel_values_videos max |diff| %.3g\n", c.name.c_str(), d);
    EXPECT_LE(d, 1e-5 / 0.26130258);  // qwen_processor_test: 1e-5 in [0, 1] pixel units
  }
  if (!i["use_audio_in_video"].get<bool>()) {
    EXPECT_EQ(v.num_tokens(), i["video_tokens"].get<int64_t>());
    return {MediaLayout::video(v.grid_thw, v.second_per_grid)};
  }
  // The soundtrack: qwen-omni-utils reads it through ffmpeg as 16-bit PCM (its samples are in
  // the fixture); MediaReader decodes the AAC to float directly, so the samples differ by the
  // 16-bit rounding only.
  const std::vector<float> pcm = read_audio(kDir + file);
  const at::Tensor ref_pcm = c.t.at("audio_samples_s16").to(at::kFloat) / 32768.0;
  EXPECT_EQ(static_cast<int64_t>(pcm.size()), ref_pcm.numel());
  if (static_cast<int64_t>(pcm.size()) == ref_pcm.numel()) {
    const at::Tensor ours = at::tensor(pcm);
    const double d = max_abs(ours, ref_pcm);
    const at::Tensor rounded = (ours * 32768.0).round().clamp(-32768, 32767) / 32768.0;
    const int64_t off = (rounded != ref_pcm).sum().item<int64_t>();
    std::printf(
        "[ %s ] soundtrack max |diff| %.3g (%.2f LSB); %lld of %lld samples differ "
        "after 16-bit rounding\n",
        c.name.c_str(), d, d * 32768, static_cast<long long>(off),
        static_cast<long long>(ref_pcm.numel()));
    EXPECT_LE(d, 1.0 / 32768);
    EXPECT_LE(off, ref_pcm.numel() / 1000);
    // Rounded to 16 bits as ffmpeg hands them to qwen-omni-utils, the features match as tightly
    // as on the WAV (a reader that wants transformers' numbers for soundtracks should round).
    std::vector<float> r(rounded.data_ptr<float>(), rounded.data_ptr<float>() + rounded.numel());
    check_audio(r, c, pre, off == 0 ? 1e-4 : 5e-3);
  }
  // The log-mel of the float samples: the 16-bit rounding alone moves quiet mel bins by up to
  // ~2e-2 (measured with transformers' own extractor on these samples), so this bound is that
  // of the rounding, not of the feature code (held to 1e-4 on the WAV cases).
  const int64_t n = check_audio(pcm, c, pre, 3e-2);
  EXPECT_EQ(n, i["audio_tokens"].get<int64_t>());
  return {MediaLayout::video_with_audio(v.grid_thw, v.second_per_grid, n)};
}

TEST(QwenPrompt, RendersAndTokenizesLikeTransformers) {
  const PromptRenderer r = PromptRenderer::from_directory(kDir);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Prompt p = r.render(request_of(c));
    EXPECT_EQ(p.text, c.info["text"].get<std::string>());
    EXPECT_EQ(p.ids, ids_of(c.info["prompt_ids"]));
    // The conversation exactly as the generator gave it to transformers (file paths included).
    const Prompt q = r.render(nlohmann::ordered_json::parse(c.info["conversation"].dump()));
    EXPECT_EQ(q.text, p.text);
  }
}

TEST(QwenSequence, LayoutFromTransformersGridsIsExact) {
  const LayoutOptions o = layout_options();
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Sequence s = build_sequence(ids_of(c.info["prompt_ids"]), reference_media(c), o);
    expect_matches(s, c);
    EXPECT_EQ(s.length(), c.info["prompt_len"].get<int64_t>());
  }
}

TEST(QwenSequence, EndToEndWithOurProcessorsIsExact) {
  const PromptRenderer r = PromptRenderer::from_directory(kDir);
  const nlohmann::json pre = read_json(kDir + "preprocessor_config.json");
  const LayoutOptions o = layout_options();
  int n = 0;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Prompt p = r.render(request_of(c));
    const std::vector<MediaLayout> media = our_media(c, pre);
    const Sequence s = build_sequence(p.ids, media, o);
    expect_matches(s, c);
    ++n;
  }
  EXPECT_EQ(n, 6);
}

TEST(QwenSequence, AudioInVideoInterleavesInTwoSecondChunks) {
  // 3 temporal patches at t = 0, 25, 50 (1 s each) and 75 audio tokens (3 s): chunk 0 holds
  // video slices 0-1 and audio 0-49, chunk 1 slice 2 and audio 50-74.
  const Case c = find_case("video_audio");
  const LayoutOptions o = layout_options();
  const Sequence s = build_sequence(ids_of(c.info["prompt_ids"]), reference_media(c), o);
  const QwenTokenIds& t = o.tokens;
  int64_t first = -1;
  for (int64_t i = 0; i < s.length(); ++i)
    if (s.input_ids[i] == t.vision_bos) first = i;
  ASSERT_GE(first, 0);
  std::vector<std::pair<int64_t, int64_t>> runs;  // (id, count) over the media span
  for (int64_t i = first; i < s.length(); ++i) {
    if (!runs.empty() && runs.back().first == s.input_ids[i])
      ++runs.back().second;
    else
      runs.emplace_back(s.input_ids[i], 1);
    if (s.input_ids[i] == t.vision_eos) break;
  }
  const std::vector<std::pair<int64_t, int64_t>> want{
      {t.vision_bos, 1}, {t.audio_bos, 1}, {t.video, 256},   {t.audio, 50},
      {t.video, 128},    {t.audio, 25},    {t.audio_eos, 1}, {t.vision_eos, 1}};
  EXPECT_EQ(runs, want);
  // Both start tokens share one position, so do both end tokens.
  EXPECT_TRUE(at::equal(s.position_ids.select(1, first), s.position_ids.select(1, first + 1)));
  const int64_t end = first + 2 + 384 + 75 + 1;
  EXPECT_TRUE(at::equal(s.position_ids.select(1, end), s.position_ids.select(1, end - 1)));
  // The third video slice sits at t = st + 50, and the audio after it continues at st + 50.
  const int64_t st = s.position_ids[0][first].item<int64_t>() + 1;
  EXPECT_EQ(s.position_ids[0][first + 2 + 256 + 50].item<int64_t>(), st + 50);
  EXPECT_EQ(s.position_ids[0][first + 2 + 256 + 50 + 128].item<int64_t>(), st + 50);
}

TEST(QwenSequence, WrongChunkOrTimingIsCaught) {
  // The parity checks above are sensitive to each layout parameter: a wrong chunk length, clock,
  // seconds per grid or audio count changes the ids or the positions of the audio-in-video case.
  const Case c = find_case("video_audio");
  const auto prompt = ids_of(c.info["prompt_ids"]);
  const auto ref_ids = ids_of(c.info["input_ids"]);
  const at::Tensor ref_pos = c.t.at("position_ids");
  for (double chunk : {1.0, 3.0}) {
    LayoutOptions o = layout_options();
    o.seconds_per_chunk = chunk;
    EXPECT_NE(build_sequence(prompt, reference_media(c), o).input_ids, ref_ids) << chunk;
  }
  {
    LayoutOptions o = layout_options();
    o.position_id_per_seconds = 24;
    EXPECT_FALSE(at::equal(build_sequence(prompt, reference_media(c), o).position_ids, ref_pos));
  }
  {
    auto media = reference_media(c);
    media[0].second_per_grid = 0.96;
    EXPECT_FALSE(at::equal(build_sequence(prompt, media, layout_options()).position_ids, ref_pos));
  }
  {
    auto media = reference_media(c);
    media[0].audio_tokens += 1;
    EXPECT_NE(build_sequence(prompt, media, layout_options()).input_ids, ref_ids);
  }
}

TEST(QwenSequence, OptionsFromTheCheckpoint) {
  const nlohmann::json man = read_json(kDir + "reference/manifest.json");
  const LayoutOptions o = layout_options();
  const auto& ids = man["token_ids"];
  EXPECT_EQ(o.tokens.image, ids["<|IMAGE|>"].get<int64_t>());
  EXPECT_EQ(o.tokens.video, ids["<|VIDEO|>"].get<int64_t>());
  EXPECT_EQ(o.tokens.audio, ids["<|AUDIO|>"].get<int64_t>());
  EXPECT_EQ(o.tokens.vision_bos, ids["<|vision_bos|>"].get<int64_t>());
  EXPECT_EQ(o.tokens.vision_eos, ids["<|vision_eos|>"].get<int64_t>());
  EXPECT_EQ(o.tokens.audio_bos, ids["<|audio_bos|>"].get<int64_t>());
  EXPECT_EQ(o.tokens.audio_eos, ids["<|audio_eos|>"].get<int64_t>());
  EXPECT_EQ(o.spatial_merge_size, 2);
  EXPECT_DOUBLE_EQ(o.seconds_per_chunk, 2.0);
  EXPECT_DOUBLE_EQ(o.position_id_per_seconds, 25.0);
  // The tokenizer agrees with the config.
  const PromptRenderer r = PromptRenderer::from_directory(kDir);
  EXPECT_EQ(r.tokenizer().require_token_id("image_token"), o.tokens.image);
  EXPECT_EQ(r.tokenizer().require_token_id("video_token"), o.tokens.video);
  EXPECT_EQ(r.tokenizer().require_token_id("audio_token"), o.tokens.audio);
  EXPECT_EQ(r.tokenizer().require_token_id("vision_bos_token"), o.tokens.vision_bos);
  EXPECT_EQ(r.tokenizer().require_token_id("audio_eos_token"), o.tokens.audio_eos);
  // Published defaults when the config is silent.
  const LayoutOptions d = LayoutOptions::from_config(nlohmann::json::object());
  EXPECT_EQ(d.tokens.image, 151655);
  EXPECT_EQ(d.tokens.audio_bos, 151647);
  EXPECT_THROW(LayoutOptions::from_config(nlohmann::json{{"image_token_index", "x"}}), ConfigError);
  EXPECT_THROW(LayoutOptions::from_config(nlohmann::json{{"image_token_index", 151656}}),
               ConfigError);  // the video token's id
  EXPECT_THROW(LayoutOptions::from_config(nlohmann::json{{"seconds_per_chunk", 0}}), ConfigError);
}

TEST(QwenSequence, BadInputIsAnInputError) {
  const LayoutOptions o = layout_options();
  const QwenTokenIds& t = o.tokens;
  const std::vector<int64_t> img{1, 2, t.vision_bos, t.image, t.vision_eos, 3};
  const auto g = std::array<int64_t, 3>{1, 4, 6};
  EXPECT_EQ(build_sequence(img, {MediaLayout::image(g)}, o).length(), 5 + 6);
  EXPECT_THROW(build_sequence(img, {}, o), InputError);                          // too few media
  EXPECT_THROW(build_sequence({1, 2}, {MediaLayout::image(g)}, o), InputError);  // too many
  EXPECT_THROW(build_sequence(img, {MediaLayout::audio(5)}, o), InputError);     // wrong kind
  EXPECT_THROW(build_sequence(img, {MediaLayout::image({1, 3, 6})}, o), InputError);  // merge
  EXPECT_THROW(build_sequence(img, {MediaLayout::image({0, 4, 6})}, o), InputError);
  // A placeholder without its start / end token, or an already expanded prompt.
  EXPECT_THROW(build_sequence({1, t.image, t.vision_eos}, {MediaLayout::image(g)}, o), InputError);
  EXPECT_THROW(build_sequence({t.vision_bos, t.image, 1}, {MediaLayout::image(g)}, o), InputError);
  EXPECT_THROW(build_sequence({t.vision_bos, t.image}, {MediaLayout::image(g)}, o), InputError);
  EXPECT_THROW(build_sequence({t.vision_bos, t.image, t.image, t.vision_eos},
                              {MediaLayout::image(g), MediaLayout::image(g)}, o),
               InputError);
  EXPECT_THROW(build_sequence({t.audio_bos, t.audio, t.audio_eos}, {MediaLayout::audio(0)}, o),
               InputError);
  const std::vector<int64_t> vid{t.vision_bos, t.video, t.vision_eos};
  EXPECT_THROW(build_sequence(vid, {MediaLayout::video({2, 4, 4}, 0)}, o), InputError);
  EXPECT_THROW(build_sequence(vid, {MediaLayout::video_with_audio({2, 4, 4}, 1.0, 0)}, o),
               InputError);
  // Text only: positions 0..L-1 on every axis, delta 0.
  const Sequence s = build_sequence({5, 6, 7}, {}, o);
  EXPECT_EQ(s.input_ids, (std::vector<int64_t>{5, 6, 7}));
  EXPECT_TRUE(at::equal(s.position_ids, at::arange(3, at::kLong).expand({3, 3})));
  EXPECT_EQ(s.rope_delta, 0);
  EXPECT_EQ(s.generated_position(0), 3);
  EXPECT_THROW(PromptRenderer::from_directory(kDir + "does_not_exist"), InputError);
}

}  // namespace
}  // namespace omni::qwen
