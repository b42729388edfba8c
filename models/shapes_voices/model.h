// The shapes & voices demo model: the ViT (video frames), the audio encoder (log-mel) and the
// fusion transformer with its tied LM head, composed exactly as the inference graph's nodes hold
// them, plus the helpers training uses to run the same layout (chunks -> UnifiedSequencer layout ->
// fusion) with gradients. Weight names: vision.*, audio.*, fusion.* in one safetensors file.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "fusion/fused_sequence.h"
#include "fusion/transformer.h"
#include "modalities/audio/audio_encoder.h"
#include "modalities/common/token_chunk.h"
#include "modalities/image/image_tokens.h"
#include "modalities/image/vit.h"

namespace omni::demo {

// Everything that fixes the model and its preprocessing; saved as config.json next to the weights.
struct DemoConfig {
  // Media sampling and preprocessing (graph node parameters).
  double fps = 1.0;         // MediaSource video frames per second (shape and colour are constant)
  int64_t image_size = 96;  // ImagePreprocess siglip side (direct resize: any aspect ratio)
  std::string preprocess_mode = "siglip";
  int64_t n_mels = 80;
  // ViT.
  int64_t patch_size = 8, vit_width = 96, vit_depth = 2, vit_heads = 3;
  bool merge = true;
  // Audio encoder.
  int64_t audio_width = 96, audio_depth = 2, audio_heads = 3;
  // Fusion transformer.
  int64_t dim = 128, layers = 3, heads = 4, kv_heads = 2, ffn = 352;
  int64_t max_answer_tokens = 10;

  nlohmann::json to_json() const;
  // Throws InputError naming `where` on missing or mistyped fields.
  static DemoConfig from_json(const nlohmann::json& j, const std::string& where);
  static DemoConfig load(const std::string& path);

  ViTOptions vit_options() const;
  AudioEncoderOptions audio_options() const;
  FusionTransformerOptions fusion_options() const;
};

class ShapesVoicesImpl : public torch::nn::Module {
 public:
  explicit ShapesVoicesImpl(const DemoConfig& config);
  DemoConfig config;
  ViT vision{nullptr};
  AudioEncoder audio{nullptr};
  FusionTransformer fusion{nullptr};
};
TORCH_MODULE(ShapesVoices);

// Weight-name prefixes, also the `prefix` params of the graph's encoder nodes.
inline constexpr const char* kVisionPrefix = "vision.";
inline constexpr const char* kAudioPrefix = "audio.";
inline constexpr const char* kFusionPrefix = "fusion.";

// The graph-side inputs of one clip, as the preprocessing nodes emitted them.
struct ClipTensors {
  std::vector<at::Tensor> frames;  // ImagePreprocess.out: [3, S, S] each
  std::vector<int64_t> frame_us;   // their timestamps
  std::vector<at::Tensor> mels;    // LogMel.out: [n_mels, T] each
  std::vector<int64_t> mel_us;
};

// The TokenChunks the encoder nodes emit, made from encoder outputs computed elsewhere (e.g. one
// batched forward over many clips in training): one video chunk per frame of `emb` [F, N, d]
// (its grid from ViT::grid), or one audio chunk of `emb` [N, d] for `mel_frames` log-mel frames
// starting at `start_us`.
std::vector<TokenChunk> video_chunks(const at::Tensor& emb, const VisualGrid& grid,
                                     const std::vector<int64_t>& frame_us,
                                     const std::string& stream);
TokenChunk audio_chunk(const at::Tensor& emb, int64_t start_us, int64_t mel_frames,
                       const std::string& stream);

// What the encoder nodes would emit for these inputs (same TokenChunk fields), with gradients
// when grad mode is on. `frames` [F, 3, S, S] are encoded in one forward, like the node's batch.
std::vector<TokenChunk> encode_video(ShapesVoicesImpl& m, const at::Tensor& frames,
                                     const std::vector<int64_t>& frame_us,
                                     const std::string& stream);
std::vector<TokenChunk> encode_audio(ShapesVoicesImpl& m, const std::vector<at::Tensor>& mels,
                                     const std::vector<int64_t>& mel_us, const std::string& stream);
// The question as the text front end gives it (byte ids).
TokenChunk question_chunk(const std::string& question);

// The prompt layout of the graph's UnifiedSequencer (SegmentAssembler with the node's defaults):
// the clip (video with its audio interleaved) first, then the question text.
FusedSequence layout_prompt(const std::vector<TokenChunk>& video,
                            const std::vector<TokenChunk>& audio, const TokenChunk& question);

// Byte ids of an answer followed by <|eos|>.
std::vector<int64_t> answer_ids(const std::string& answer);

// One teacher-forced training example: the prompt exactly as inference lays it out
// (layout_prompt) followed by the answer's tokens but the last, each answer token at the position
// the Generate node feeds it (prompt.next_position() + k on every axis); the targets are the
// answer ids (then <|eos|>) from the prompt's last token on, -100 elsewhere.
struct TrainingExample {
  FusedSequence prompt;
  at::Tensor embeds;     // [L, d] (with gradients when grad mode is on)
  at::Tensor positions;  // [3, L]
  at::Tensor targets;    // [L], -100 where no loss
  int64_t first = 0;     // index of the first answer target (the prompt's last token)
};
TrainingExample training_example(ShapesVoicesImpl& m, const std::vector<TokenChunk>& video,
                                 const std::vector<TokenChunk>& audio, int question,
                                 const std::string& answer);

}  // namespace omni::demo
