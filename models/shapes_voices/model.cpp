#include "models/shapes_voices/model.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <fstream>

#include "core/error.h"
#include "fusion/heads.h"
#include "fusion/sequencer.h"
#include "modalities/text/tokenizer.h"
#include "models/shapes_voices/task.h"

namespace omni::demo {

nlohmann::json DemoConfig::to_json() const {
  return {{"fps", fps},
          {"image_size", image_size},
          {"preprocess_mode", preprocess_mode},
          {"n_mels", n_mels},
          {"patch_size", patch_size},
          {"vit_width", vit_width},
          {"vit_depth", vit_depth},
          {"vit_heads", vit_heads},
          {"merge", merge},
          {"audio_width", audio_width},
          {"audio_depth", audio_depth},
          {"audio_heads", audio_heads},
          {"dim", dim},
          {"layers", layers},
          {"heads", heads},
          {"kv_heads", kv_heads},
          {"ffn", ffn},
          {"max_answer_tokens", max_answer_tokens}};
}

DemoConfig DemoConfig::from_json(const nlohmann::json& j, const std::string& where) {
  DemoConfig c;
  try {
    c.fps = j.at("fps").get<double>();
    c.image_size = j.at("image_size").get<int64_t>();
    c.preprocess_mode = j.at("preprocess_mode").get<std::string>();
    c.n_mels = j.at("n_mels").get<int64_t>();
    c.patch_size = j.at("patch_size").get<int64_t>();
    c.vit_width = j.at("vit_width").get<int64_t>();
    c.vit_depth = j.at("vit_depth").get<int64_t>();
    c.vit_heads = j.at("vit_heads").get<int64_t>();
    c.merge = j.at("merge").get<bool>();
    c.audio_width = j.at("audio_width").get<int64_t>();
    c.audio_depth = j.at("audio_depth").get<int64_t>();
    c.audio_heads = j.at("audio_heads").get<int64_t>();
    c.dim = j.at("dim").get<int64_t>();
    c.layers = j.at("layers").get<int64_t>();
    c.heads = j.at("heads").get<int64_t>();
    c.kv_heads = j.at("kv_heads").get<int64_t>();
    c.ffn = j.at("ffn").get<int64_t>();
    c.max_answer_tokens = j.at("max_answer_tokens").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(where + ": bad model config: " + e.what());
  }
  return c;
}

DemoConfig DemoConfig::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot open model config '" + path + "'");
  try {
    return from_json(nlohmann::json::parse(in), path);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError("model config '" + path + "' is not valid JSON: " + e.what());
  }
}

ViTOptions DemoConfig::vit_options() const {
  return ViTOptions()
      .image_size(image_size)
      .patch_size(patch_size)
      .width(vit_width)
      .depth(vit_depth)
      .heads(vit_heads)
      .merge(merge)
      .out_dim(dim);
}

AudioEncoderOptions DemoConfig::audio_options() const {
  return AudioEncoderOptions()
      .n_mels(n_mels)
      .width(audio_width)
      .depth(audio_depth)
      .heads(audio_heads)
      .out_dim(dim);
}

FusionTransformerOptions DemoConfig::fusion_options() const {
  return FusionTransformerOptions()
      .vocab(SpecialTokens::kByteVocab)
      .dim(dim)
      .layers(layers)
      .heads(heads)
      .kv_heads(kv_heads)
      .ffn(ffn);
}

ShapesVoicesImpl::ShapesVoicesImpl(const DemoConfig& c) : config(c) {
  vision = register_module("vision", ViT(c.vit_options()));
  audio = register_module("audio", AudioEncoder(c.audio_options()));
  fusion = register_module("fusion", FusionTransformer(c.fusion_options()));
}

std::vector<TokenChunk> video_chunks(const at::Tensor& emb, const VisualGrid& grid,
                                     const std::vector<int64_t>& frame_us,
                                     const std::string& stream) {
  if (emb.dim() != 3 || emb.size(0) != int64_t(frame_us.size()))
    throw InputError("video_chunks: " + std::to_string(frame_us.size()) +
                     " frame times for embeddings " + c10::str(emb.sizes()) + " (want [F, N, d])");
  std::vector<TokenChunk> out;
  for (int64_t i = 0; i < emb.size(0); ++i) {
    TokenChunk c;
    c.modality = Modality::kVideo;
    c.embeddings = emb[i];
    c.start_us = c.end_us = frame_us[size_t(i)];
    c.grid_h = grid.h;
    c.grid_w = grid.w;
    c.stream = stream;
    out.push_back(std::move(c));
  }
  return out;
}

TokenChunk audio_chunk(const at::Tensor& emb, int64_t start_us, int64_t mel_frames,
                       const std::string& stream) {
  if (emb.dim() != 2) throw InputError("audio_chunk: embeddings must be [N, d]");
  TokenChunk c;
  c.modality = Modality::kAudio;
  c.embeddings = emb;
  c.start_us = start_us;
  c.end_us = start_us + mel_frames * 10000;  // 100 mel frames per second
  c.grid_w = emb.size(0);
  c.stream = stream;
  return c;
}

std::vector<TokenChunk> encode_video(ShapesVoicesImpl& m, const at::Tensor& frames,
                                     const std::vector<int64_t>& frame_us,
                                     const std::string& stream) {
  if (!frames.defined() || frames.size(0) == 0) return {};
  return video_chunks(m.vision->forward(frames), m.vision->grid(frames.size(2), frames.size(3)),
                      frame_us, stream);
}

std::vector<TokenChunk> encode_audio(ShapesVoicesImpl& m, const std::vector<at::Tensor>& mels,
                                     const std::vector<int64_t>& mel_us,
                                     const std::string& stream) {
  std::vector<TokenChunk> out;
  for (size_t i = 0; i < mels.size(); ++i) {
    if (mels[i].size(1) == 0) continue;
    out.push_back(audio_chunk(m.audio->forward(mels[i]), mel_us[i], mels[i].size(1), stream));
  }
  return out;
}

TokenChunk question_chunk(const std::string& question) {
  TokenChunk c;
  c.modality = Modality::kText;
  // The TextEncoder node's tokenizer ("byte").
  static const auto tokenizer = load_tokenizer("byte");
  const std::vector<int64_t> ids = tokenizer->encode(question);
  c.ids = at::tensor(ids, at::kLong);
  c.grid_w = int64_t(ids.size());
  c.stream = "question";
  return c;
}

FusedSequence layout_prompt(const std::vector<TokenChunk>& video,
                            const std::vector<TokenChunk>& audio, const TokenChunk& question) {
  // The UnifiedSequencer node's own assembly with its default parameters (text after the media,
  // video paired with its soundtrack in 2 s chunks), so training sees the graph's layout.
  SegmentAssembler assembler{SequencerConfig{}};
  std::vector<TokenChunk> chunks(video.begin(), video.end());
  chunks.insert(chunks.end(), audio.begin(), audio.end());
  chunks.push_back(question);
  return assembler.assemble(std::move(chunks), 0, 0);
}

std::vector<int64_t> answer_ids(const std::string& answer) {
  std::vector<int64_t> ids;
  for (unsigned char ch : answer) ids.push_back(ch);
  ids.push_back(SpecialTokens{}.eos);
  return ids;
}

TrainingExample training_example(ShapesVoicesImpl& m, const std::vector<TokenChunk>& video,
                                 const std::vector<TokenChunk>& audio, int question,
                                 const std::string& answer) {
  if (question < 0 || question >= kNumQuestions)
    throw InputError("training_example: no question " + std::to_string(question));
  TrainingExample s;
  s.prompt = layout_prompt(video, audio, question_chunk(kQuestionText[size_t(question)]));
  const auto ans = answer_ids(answer);
  const int64_t lp = s.prompt.length(), na = int64_t(ans.size());
  // Inputs: prompt + answer[:-1]; answer token k sits at position next + k on every axis, as the
  // Generate node feeds generated tokens.
  const at::Tensor ans_in = at::tensor(std::vector<int64_t>(ans.begin(), ans.end() - 1), at::kLong);
  s.embeds = at::cat({embed_sequence(*m.fusion, s.prompt)[0], m.fusion->embed_ids(ans_in)}, 0);
  const int64_t next = s.prompt.next_position();
  const at::Tensor ap = at::arange(next, next + na - 1, at::kLong).unsqueeze(0).expand({3, na - 1});
  s.positions = at::cat({s.prompt.positions, ap}, 1);
  s.targets = at::full({lp + na - 1}, -100, at::kLong);
  s.targets.slice(0, lp - 1, lp - 1 + na).copy_(at::tensor(ans, at::kLong));
  s.first = lp - 1;
  return s;
}

}  // namespace omni::demo
