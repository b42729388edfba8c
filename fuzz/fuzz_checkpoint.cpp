// Checkpoint JSON: config.json (family, towers and their summaries, eos/pad ids, name mapping),
// generation_config.json and model.safetensors.index.json (weight map checks), as
// Checkpoint::open reads them before it opens any shard. Input: CONFIG \0 INDEX \0 GENERATION
// (an empty part is absent).
#include <string>

#include "fuzz/fuzz_util.h"
#include "modalities/common/checkpoint_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = omni::fuzz::split_parts(data, size, 3);
  omni::fuzz::expect_clean_errors([&] {
    const nlohmann::json config = omni::parse_checkpoint_json(parts[0], "config.json");
    if (!config.is_object()) return;
    const nlohmann::json gen = parts[2].empty()
                                   ? nlohmann::json::object()
                                   : omni::parse_checkpoint_json(parts[2], "generation.json");
    if (!gen.is_object()) return;
    const omni::ModelFamily& family = omni::detect_model_family(config);
    for (const auto& [tower, ptr] : family.towers)
      (void)omni::summarize_tower(tower, omni::family_tower_config(family, config, tower));
    (void)omni::checkpoint_eos_token_ids(config, gen,
                                         omni::family_tower_config(family, config, "text"), "");
    if (parts[1].empty()) return;
    const nlohmann::json index = omni::parse_checkpoint_json(parts[1], "index.json");
    const omni::CheckpointIndex ix = omni::parse_checkpoint_index(index, "index.json");
    for (const auto& [hub, file] : ix.shard_of) (void)omni::family_map_name(family, hub);
  });
  return 0;
}
