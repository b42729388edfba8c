// Qwen2.5-Omni's thinker assembled from a Hugging Face directory: the checkpoint (recognised from
// config.json), the vision tower, the audio tower, the Qwen2 language model, the tokenizer and the
// chat template. prepare() turns (media file, question) into the prompt transformers builds (our
// processors, the towers, the sequence layout, the tower outputs scattered into the embedded prompt
// at the <|IMAGE|> / <|VIDEO|> / <|AUDIO|> positions); prompt_logits() and generate() run the
// language model on it.
//
//   auto t = omni::qwen::Thinker::open("/models/Qwen2.5-Omni-3B", {.dtype = "bf16"});
//   auto p = t->prepare("clip.mp4", "What happens?", {});
//   t->generate(p, {}, [](int64_t, const std::string& text) { std::cout << text << std::flush; });
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/type_name.h"
#include "models/qwen2_5_omni/media.h"

namespace omni {
class Checkpoint;
struct LoadReport;
class HfTokenizer;
}  // namespace omni

namespace omni::qwen {

struct ThinkerOptions {
  std::string device = "cpu";  // cpu, cuda, cuda:N
  std::string dtype = "fp32";  // fp32 or bf16 (CPU); bf16 / fp16 also on CUDA
  // Which modules to build and load (the graph's nodes each load only their own); the tokenizer,
  // chat template and processor settings are always read.
  bool vision = true, audio = true, text = true;
  // Weights whose checkpoint dtype is the model's dtype use the memory-mapped checkpoint bytes in
  // place on the CPU (LoadOptions::map_weights: one copy of the weights in memory, not two; a
  // write to a weight stays private to the process). Off: every weight is copied.
  bool map_weights = true;
  // bf16 on the CPU: hold the BLAS's own thread pool (OpenBLAS) to one thread, process-wide
  // (omni::set_blas_threads). The big products then run in oneDNN on libtorch's OpenMP threads
  // and the fp32 attention products in the BLAS on the calling thread; with both pools at one
  // thread per core they fought over the cores and prefill ran 1.2-1.35x slower
  // (docs/PERFORMANCE.md, "Decoding").
  bool single_thread_blas = true;
};

// One user turn: the media item (if any), then the question.
struct PromptOptions {
  std::optional<std::string> system;  // nullopt: the template's own system prompt
  MediaOptions media;                 // fps, audio-in-video
};

// The prompt as the language model sees it.
struct ThinkerPrompt {
  std::string text;          // the rendered chat template (placeholders not expanded)
  std::vector<int64_t> ids;  // prompt ids, placeholders expanded (transformers' input_ids)
  at::Tensor position_ids;   // int64 [3, 1, L] (get_rope_index)
  int64_t rope_delta = 0;    // position of the next token = cache length + rope_delta
  at::Tensor embeds;         // [1, L, hidden], model dtype and device, media scattered in
  // The towers' outputs the embeds take at the placeholders (kept until embed() has run).
  at::Tensor image_embeds, video_embeds, audio_embeds;
  std::map<std::string, int64_t> tokens;  // "text", "image", "video", "audio" token counts
  MediaKind kind = MediaKind::kNone;
  bool audio_in_video = false;  // a video's sound track is interleaved with it
  std::string model_dir;        // the checkpoint that laid it out
};

// Sampling settings (greedy unless do_sample).
struct SampleOptions {
  int64_t max_new_tokens = 128;
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;  // 0: no top-k filter
  double top_p = 1.0;
  uint64_t seed = 0;
  // Stop ids; empty: the checkpoint's (generation_config.json eos ids).
  std::vector<int64_t> eos_token_ids;
};

struct Answer {
  std::vector<int64_t> ids;  // generated ids (the stop token included when one was produced)
  std::string text;          // decoded, special tokens skipped
  bool stopped = false;      // ended on a stop id (else max_new_tokens)
};

// Called once per generated token with the text that became printable (may be empty while a
// multi-byte character is incomplete; UTF-8 is never split).
using TextCallback = std::function<void(int64_t id, const std::string& text)>;

// Incremental detokenizer for streaming: push ids, get the newly complete text.
class TextStreamer {
 public:
  explicit TextStreamer(const HfTokenizer& tok) : tok_(&tok) {}
  std::string push(int64_t id);
  std::string finish();  // whatever was held back (a trailing incomplete character)

 private:
  const HfTokenizer* tok_;
  std::vector<int64_t> ids_;
  size_t printed_ = 0;  // bytes of the decoded text already returned
};

// Names of the supported architectures (config.json architectures / model_type), for messages.
std::string supported_architectures();
// Whether a checkpoint directory's config.json names a Hugging Face architecture or model type at
// all (false for the demo model's config and for directories without config.json).
bool is_hub_model_dir(const std::string& dir);

class Thinker {
 public:
  // Opens and loads everything. InputError for a missing directory, an unsupported model (the
  // message lists the supported ones), missing or malformed files, weights that do not fit.
  static std::unique_ptr<Thinker> open(const std::string& dir, const ThinkerOptions& o = {});
  ~Thinker();
  Thinker(const Thinker&) = delete;
  Thinker& operator=(const Thinker&) = delete;

  // A media file ("" = text only) and a question -> the prompt.
  ThinkerPrompt prepare(const std::string& media_path, const std::string& question,
                        const PromptOptions& o = {}) const;
  // The same for media already processed (towers run here unless their embeds are set).
  ThinkerPrompt prepare(QwenMedia media, const std::string& question,
                        const std::optional<std::string>& system = std::nullopt) const;
  // The two halves of prepare() for encoded media: the layout (rendered text, expanded ids,
  // position ids, rope delta, token counts; the tower outputs are carried along), then the
  // embedding of the ids with the tower outputs scattered in (needs the text model).
  ThinkerPrompt layout(const QwenMedia& media, const std::string& question,
                       const std::optional<std::string>& system = std::nullopt) const;
  void embed(ThinkerPrompt& p) const;

  // Runs the towers on a processed media item (fills image/video/audio_embeds).
  void encode(QwenMedia& media) const;
  void encode_vision(QwenMedia& media) const;
  void encode_audio(QwenMedia& media) const;

  // The rendered chat template for one user turn (media placeholder, then the question).
  std::string render(MediaKind kind, const std::string& question,
                     const std::optional<std::string>& system) const;

  // Logits of the prompt's forward pass: float32 [L, vocab] on the CPU.
  at::Tensor prompt_logits(const ThinkerPrompt& p) const;
  // Generates an answer; on_token (optional) sees each token as it is produced.
  Answer generate(const ThinkerPrompt& p, const SampleOptions& o,
                  const TextCallback& on_token = {}) const;

  const Checkpoint& checkpoint() const;
  // The towers' weights together: tensors and bytes loaded, and how many use the mapping in place.
  const LoadReport& load_report() const;
  const HfTokenizer& tokenizer() const;
  const ProcessorConfig& processor() const;
  std::vector<int64_t> eos_token_ids() const;
  const std::string& architecture() const;
  const std::string& directory() const;

 private:
  Thinker();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace omni::qwen

OMNI_TYPE_NAME(omni::qwen::ThinkerPrompt, "QwenPrompt");
// text, ids, position_ids ([3][L]), rope_delta, tokens per modality
OMNI_PAYLOAD_JSON(omni::qwen::ThinkerPrompt);
