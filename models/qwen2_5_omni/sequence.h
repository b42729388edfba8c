// The Qwen2.5-Omni prompt layout: from the rendered chat template's token ids (placeholders
// <|IMAGE|>, <|AUDIO|>, <|VIDEO|> once each, between their start and end tokens) and the media
// descriptions (patch grids, seconds per temporal grid, audio token counts), the expanded
// input_ids exactly as transformers' Qwen2_5OmniProcessor builds them (including the audio-in-video
// interleave in seconds_per_chunk chunks) and the [3, L] position ids and rope delta exactly as
// the thinker's get_rope_index. The numbering is the fusion sequencer's (build_fused_sequence,
// TMRoPE); this file maps Qwen's tokens onto it. Also the prompt itself: the checkpoint's chat
// template rendered for one user turn (the media item, then the question) and tokenized.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fusion/fused_sequence.h"

namespace omni {
class HfTokenizer;
}

namespace omni::qwen {

// Ids of the placeholder and boundary tokens (defaults: the published checkpoints' ids).
struct QwenTokenIds {
  int64_t image = 151655, video = 151656, audio = 151646;
  int64_t vision_bos = 151652, vision_eos = 151653;
  int64_t audio_bos = 151647, audio_eos = 151648;

  // From config.json's thinker_config (image_token_index or image_token_id, video_token_index,
  // audio_token_index, vision_start_token_id, vision_end_token_id, audio_start_token_id,
  // audio_end_token_id); absent keys keep the defaults. Throws ConfigError for a key that is not
  // an integer or ids that are negative or not distinct.
  static QwenTokenIds from_config(const nlohmann::json& thinker_config);
  void validate() const;  // ConfigError
};

struct LayoutOptions {
  QwenTokenIds tokens;
  double position_id_per_seconds = 25;  // thinker_config.position_id_per_seconds
  double seconds_per_chunk = 2;         // thinker_config.seconds_per_chunk
  int64_t spatial_merge_size = 2;       // thinker_config.vision_config.spatial_merge_size
  // From config.json's thinker_config (or a whole config.json: its thinker_config is used).
  static LayoutOptions from_config(const nlohmann::json& config);
  void validate() const;  // ConfigError
};

// One media item of the prompt, in the order of the placeholders.
struct MediaLayout {
  enum class Kind { kImage, kVideo, kAudio };
  Kind kind = Kind::kImage;
  std::array<int64_t, 3> grid_thw{};  // image / video: the processor's patch grid (t, h, w)
  double second_per_grid = 0;         // video: video_second_per_grid (temporal_patch_size / fps)
  int64_t audio_tokens = 0;           // audio; a video with audio_in_video: its soundtrack's
  bool audio_in_video = false;        // video: interleave its soundtrack (use_audio_in_video)

  static MediaLayout image(std::array<int64_t, 3> grid_thw);
  static MediaLayout video(std::array<int64_t, 3> grid_thw, double second_per_grid);
  static MediaLayout video_with_audio(std::array<int64_t, 3> grid_thw, double second_per_grid,
                                      int64_t audio_tokens);
  static MediaLayout audio(int64_t audio_tokens);
  const char* name() const;  // "image", "video", "audio"
};

struct Sequence {
  std::vector<int64_t> input_ids;  // the processor's expanded input_ids
  at::Tensor position_ids;         // [3, L] int64 (temporal, height, width)
  int64_t rope_delta = 0;          // largest position + 1 - L (get_rope_index's mrope delta)
  // The layout as the fusion sequencer sees it: pieces (text runs, each media run with its
  // placeholder ids), boundaries, per-token modality.
  FusedSequence fused;

  int64_t length() const { return static_cast<int64_t>(input_ids.size()); }
  // Position of the k-th token generated after the prompt (all three axes): L + rope_delta + k.
  int64_t generated_position(int64_t k) const { return length() + rope_delta + k; }
};

// Expands `prompt_ids` (the rendered template tokenized: each placeholder once, directly between
// its start and end token: <|vision_bos|><|IMAGE|><|vision_eos|>, <|vision_bos|><|VIDEO|>
// <|vision_eos|>, <|audio_bos|><|AUDIO|><|audio_eos|>) with `media` (one per placeholder, same
// order and kind). A video with audio_in_video becomes <|vision_bos|><|audio_bos|>, its video and
// audio tokens interleaved in seconds_per_chunk chunks, <|audio_eos|><|vision_eos|>. Throws
// InputError when placeholders and media disagree (count, kind, missing start/end token, grids
// that the merge size does not divide, non-positive counts or seconds per grid).
Sequence build_sequence(const std::vector<int64_t>& prompt_ids,
                        const std::vector<MediaLayout>& media, const LayoutOptions& options);

// ---- the prompt ----

enum class PromptMedia { kNone, kImage, kAudio, kVideo };

struct PromptRequest {
  std::optional<std::string> system;  // nullopt: the template's own default system prompt
  PromptMedia media = PromptMedia::kNone;
  std::string question;
};

// The conversation for the chat template: [system?] + one user turn whose content is the media
// item ({"type": "image"|"audio"|"video"}) then {"type": "text", "text": question}. A system text
// is given as a content list [{"type": "text", "text": ...}] as qwen-omni-utils' examples do.
nlohmann::ordered_json prompt_messages(const PromptRequest& request);

struct Prompt {
  std::string text;          // the rendered template (add_generation_prompt)
  std::vector<int64_t> ids;  // tokenized, placeholders once each
};

// The chat template (processor precedence: chat_template.json, chat_template.jinja,
// tokenizer_config.json) and the tokenizer (HfTokenizer) of a checkpoint directory.
class PromptRenderer {
 public:
  // Throws InputError naming the directory / file when something is missing or malformed.
  static PromptRenderer from_directory(const std::string& dir);
  Prompt render(const PromptRequest& request) const;
  Prompt render(const nlohmann::ordered_json& messages) const;
  const HfTokenizer& tokenizer() const { return *tokenizer_; }
  std::shared_ptr<const HfTokenizer> shared_tokenizer() const { return tokenizer_; }
  const std::string& chat_template() const { return template_; }

 private:
  std::string template_;
  nlohmann::ordered_json special_tokens_;
  std::shared_ptr<const HfTokenizer> tokenizer_;
};

}  // namespace omni::qwen
