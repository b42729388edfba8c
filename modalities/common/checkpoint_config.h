// The JSON of a Hugging Face checkpoint directory, torch-free: config.json parsing, the model
// family table and its name rules, tower configs and their summaries, eos ids, and the
// model.safetensors.index.json weight map. Used by Checkpoint (checkpoint.h) and fuzzed on its own
// (fuzz/fuzz_checkpoint.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace omni {

// The largest size a model config may give a dimension (width, vocabulary, depth, heads): 2^24,
// far above any published model (the widest are 2^14-2^16 wide, the largest vocabularies about
// 2^18) and low enough that the product of two sizes cannot overflow. The towers' options hold
// their configs to it; Thinker::open then checks the sizes against the checkpoint's tensor shapes
// before it builds anything.
inline constexpr int64_t kMaxConfigDimension = int64_t{1} << 24;

// How one model family's hub tensor names become our module names: the single table lives in
// checkpoint.cpp (model_families()). A hub name is processed as: a name under an `unused` prefix
// is skipped (and listed); else the first matching `strip` prefix is removed; then the first
// `renames` rule whose `from` prefix matches replaces it with `to`.
struct NameRule {
  std::string from, to;
};
struct ModelFamily {
  std::string name;                        // e.g. "qwen2_5_omni"
  std::vector<std::string> architectures;  // config.json "architectures" entries it accepts
  std::vector<std::string> model_types;    // or config.json "model_type" values
  std::vector<std::string> strip;          // e.g. "thinker."
  std::vector<std::string> unused;         // e.g. "talker.", "token2wav."
  std::vector<NameRule> renames;           // hub prefix -> our prefix, first match wins
  // Tower name -> JSON pointer into config.json ("" = the root object). Absent objects are skipped.
  std::vector<std::pair<std::string, std::string>> towers;
  // Tied weights: (our name, our name it copies) when the text config says tie_word_embeddings.
  std::vector<NameRule> tied;
};
// The table of known families (the last entry, "generic", accepts anything and renames nothing).
const std::vector<ModelFamily>& model_families();

// The numbers of one tower's config that a summary shows (absent = the config does not say).
struct TowerSummary {
  std::string name;  // "text", "vision", "audio", "talker", ...
  std::string model_type;
  std::map<std::string, int64_t> ints;   // layers, hidden, heads, kv_heads, head_dim, vocab, ...
  std::map<std::string, double> floats;  // rope_theta, rms_norm_eps
  std::map<std::string, std::vector<int64_t>> lists;  // mrope_section, fullatt_block_indexes
  std::map<std::string, bool> flags;                  // tie_word_embeddings
};

// Parses a checkpoint JSON file's text; InputError "'<path>': malformed JSON: ..." when it is not.
nlohmann::json parse_checkpoint_json(std::string_view text, const std::string& path);

// The family of a config.json: by "architectures" first, then "model_type", else "generic".
const ModelFamily& detect_model_family(const nlohmann::json& config);
// Our name for a hub tensor name under `family`'s rules; nullopt for tensors of unused groups.
std::optional<std::string> family_map_name(const ModelFamily& family, const std::string& hub);
// The tower's config object inside config.json (see ModelFamily::towers), nullptr when absent.
const nlohmann::json* family_tower_config(const ModelFamily& family, const nlohmann::json& config,
                                          const std::string& tower);
// The summary of one tower's config (`config` may be nullptr: an empty summary).
TowerSummary summarize_tower(const std::string& tower, const nlohmann::json* config);
// eos ids from generation_config.json (int or list), else from the text config, else the root;
// InputError (prefixed by `where`) for a value of the wrong type.
std::vector<int64_t> checkpoint_eos_token_ids(const nlohmann::json& config,
                                              const nlohmann::json& generation_config,
                                              const nlohmann::json* text_config,
                                              const std::string& where);

// model.safetensors.index.json, checked: a non-empty "weight_map" object of tensor name -> shard
// file name (a plain file name in the directory, never a path), optional "metadata" object.
struct CheckpointIndex {
  std::map<std::string, std::string> shard_of;               // tensor -> shard file
  std::map<std::string, std::vector<std::string>> by_shard;  // shard file -> its tensors
  nlohmann::json metadata;                                   // null when absent
};
// InputError "'<path>': malformed index: ..." for anything else.
CheckpointIndex parse_checkpoint_index(const nlohmann::json& index, const std::string& path);

}  // namespace omni
