// The torch-free part of checkpoint reading (see checkpoint_config.h).
#include "modalities/common/checkpoint_config.h"

#include <algorithm>

#include "core/error.h"

namespace omni {
namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

// Safe lookup of a JSON pointer ("" = root); nullptr when absent or not an object.
const nlohmann::json* at_pointer(const nlohmann::json& root, const std::string& ptr) {
  const nlohmann::json* cur = &root;
  if (!ptr.empty()) {
    try {
      nlohmann::json::json_pointer jp(ptr);
      if (!root.contains(jp)) return nullptr;
      cur = &root.at(jp);
    } catch (const nlohmann::json::exception&) {
      return nullptr;
    }
  }
  return cur->is_object() ? cur : nullptr;
}

}  // namespace

const std::vector<ModelFamily>& model_families() {
  // THE name table: hub names -> our module names, per model family. Our towers are "text."
  // (decoder: embed_tokens, layers.N, norm, lm_head), "vision." and "audio.", with the hub's own
  // names inside each tower.
  static const std::vector<ModelFamily> kFamilies = {
      {"qwen2_5_omni",
       {"Qwen2_5OmniForConditionalGeneration", "Qwen2_5OmniModel"},
       {"qwen2_5_omni"},
       {"thinker."},
       {"talker.", "token2wav."},
       {{"model.", "text."},
        {"lm_head.", "text.lm_head."},
        {"visual.", "vision."},
        {"audio_tower.", "audio."}},
       {{"text", "/thinker_config/text_config"},
        {"vision", "/thinker_config/vision_config"},
        {"audio", "/thinker_config/audio_config"},
        {"talker", "/talker_config"}},
       {{"text.lm_head.weight", "text.embed_tokens.weight"}}},
      {"qwen2_5_omni_thinker",
       {"Qwen2_5OmniThinkerForConditionalGeneration"},
       {"qwen2_5_omni_thinker"},
       {},
       {},
       {{"model.language_model.", "text."},
        {"model.visual.", "vision."},
        {"model.audio_tower.", "audio."},
        {"model.", "text."},
        {"lm_head.", "text.lm_head."},
        {"visual.", "vision."},
        {"audio_tower.", "audio."}},
       {{"text", "/text_config"}, {"vision", "/vision_config"}, {"audio", "/audio_config"}},
       {{"text.lm_head.weight", "text.embed_tokens.weight"}}},
      {"qwen2_vl",
       {"Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"},
       {"qwen2_vl", "qwen2_5_vl"},
       {},
       {},
       {{"model.language_model.", "text."},
        {"model.visual.", "vision."},
        {"model.", "text."},
        {"lm_head.", "text.lm_head."},
        {"visual.", "vision."}},
       {{"text", "/text_config|"}, {"vision", "/vision_config"}},
       {{"text.lm_head.weight", "text.embed_tokens.weight"}}},
      {"qwen2",
       {"Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM"},
       {"qwen2", "qwen3", "llama"},
       {},
       {},
       {{"model.", "text."}, {"lm_head.", "text.lm_head."}},
       {{"text", ""}},
       {{"text.lm_head.weight", "text.embed_tokens.weight"}}},
      {"generic",
       {},
       {},
       {},
       {},
       {},
       {{"text", "/thinker_config/text_config|/text_config|/language_config|"},
        {"vision", "/thinker_config/vision_config|/vision_config"},
        {"audio", "/thinker_config/audio_config|/audio_config"}},
       {}},
  };
  return kFamilies;
}

nlohmann::json parse_checkpoint_json(std::string_view text, const std::string& path) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw InputError("'" + path + "': malformed JSON: " + e.what());
  }
}

const ModelFamily& detect_model_family(const nlohmann::json& config) {
  const auto& fams = model_families();
  std::vector<std::string> archs;
  if (auto a = config.find("architectures"); a != config.end() && a->is_array())
    for (const auto& x : *a)
      if (x.is_string()) archs.push_back(x.get<std::string>());
  std::string mt;
  if (auto m = config.find("model_type"); m != config.end() && m->is_string())
    mt = m->get<std::string>();
  // By architecture first, then by model_type; anything else is the generic family.
  for (const auto& f : fams)
    for (const auto& a : archs)
      if (std::find(f.architectures.begin(), f.architectures.end(), a) != f.architectures.end())
        return f;
  for (const auto& f : fams)
    if (std::find(f.model_types.begin(), f.model_types.end(), mt) != f.model_types.end()) return f;
  return fams.back();
}

std::optional<std::string> family_map_name(const ModelFamily& family, const std::string& hub) {
  for (const auto& u : family.unused)
    if (starts_with(hub, u)) return std::nullopt;
  std::string n = hub;
  for (const auto& s : family.strip)
    if (starts_with(n, s)) {
      n = n.substr(s.size());
      break;
    }
  for (const auto& r : family.renames)
    if (starts_with(n, r.from)) {
      n = r.to + n.substr(r.from.size());
      break;
    }
  return n;
}

const nlohmann::json* family_tower_config(const ModelFamily& family, const nlohmann::json& config,
                                          const std::string& tower) {
  for (const auto& [name, ptrs] : family.towers) {
    if (name != tower) continue;
    size_t start = 0;
    while (true) {
      const size_t bar = ptrs.find('|', start);
      const std::string p = ptrs.substr(start, bar == std::string::npos ? bar : bar - start);
      if (const nlohmann::json* j = at_pointer(config, p)) return j;
      if (bar == std::string::npos) break;
      start = bar + 1;
    }
  }
  return nullptr;
}

TowerSummary summarize_tower(const std::string& tower, const nlohmann::json* config) {
  TowerSummary s;
  s.name = tower;
  const nlohmann::json* c = config;
  if (!c) return s;
  if (c->contains("model_type") && (*c)["model_type"].is_string())
    s.model_type = (*c)["model_type"].get<std::string>();
  auto first_int = [&](const char* key, std::initializer_list<const char*> names) {
    for (const char* n : names) {
      auto it = c->find(n);
      if (it != c->end() && it->is_number_integer()) {
        s.ints[key] = it->get<int64_t>();
        return;
      }
    }
  };
  first_int("layers", {"num_hidden_layers", "depth", "encoder_layers", "num_layers", "n_layer"});
  first_int("hidden", {"hidden_size", "d_model", "embed_dim", "n_embd"});
  first_int("heads", {"num_attention_heads", "num_heads", "encoder_attention_heads", "n_head"});
  first_int("kv_heads", {"num_key_value_heads"});
  first_int("head_dim", {"head_dim"});
  first_int("intermediate", {"intermediate_size", "encoder_ffn_dim", "ffn_dim"});
  first_int("vocab", {"vocab_size"});
  first_int("max_positions", {"max_position_embeddings", "max_source_positions"});
  first_int("out_hidden", {"out_hidden_size", "output_dim"});
  first_int("patch_size", {"patch_size"});
  first_int("temporal_patch_size", {"temporal_patch_size"});
  first_int("spatial_merge_size", {"spatial_merge_size"});
  first_int("window_size", {"window_size"});
  first_int("num_mel_bins", {"num_mel_bins"});
  first_int("n_window", {"n_window"});
  if (!s.ints.count("head_dim") && s.ints.count("hidden") && s.ints.count("heads") &&
      s.ints["heads"] > 0 && s.ints["hidden"] % s.ints["heads"] == 0)
    s.ints["head_dim"] = s.ints["hidden"] / s.ints["heads"];
  // transformers 5 writes rope settings under rope_parameters; 4.x wrote rope_theta at the top
  // level and mrope_section under rope_scaling.
  auto number = [](const nlohmann::json& o, const char* k) -> std::optional<double> {
    auto it = o.find(k);
    if (it != o.end() && it->is_number()) return it->get<double>();
    return std::nullopt;
  };
  const nlohmann::json* rp = at_pointer(*c, "/rope_parameters");
  const nlohmann::json* rs = at_pointer(*c, "/rope_scaling");
  if (auto v = rp ? number(*rp, "rope_theta") : std::nullopt)
    s.floats["rope_theta"] = *v;
  else if (auto w = number(*c, "rope_theta"))
    s.floats["rope_theta"] = *w;
  if (auto v = number(*c, "rms_norm_eps")) s.floats["rms_norm_eps"] = *v;
  auto int_list = [&](const nlohmann::json* o, const char* k, const char* key) {
    if (!o || s.lists.count(key)) return;
    auto it = o->find(k);
    if (it == o->end() || !it->is_array()) return;
    std::vector<int64_t> v;
    for (const auto& x : *it) {
      if (!x.is_number_integer()) return;
      v.push_back(x.get<int64_t>());
    }
    s.lists[key] = v;
  };
  int_list(rp, "mrope_section", "mrope_section");
  int_list(rs, "mrope_section", "mrope_section");
  int_list(c, "fullatt_block_indexes", "fullatt_block_indexes");
  if (auto it = c->find("tie_word_embeddings"); it != c->end() && it->is_boolean())
    s.flags["tie_word_embeddings"] = it->get<bool>();
  return s;
}

std::vector<int64_t> checkpoint_eos_token_ids(const nlohmann::json& config,
                                              const nlohmann::json& generation_config,
                                              const nlohmann::json* text_config,
                                              const std::string& where) {
  auto parse = [&](const nlohmann::json& o,
                   const std::string& file) -> std::optional<std::vector<int64_t>> {
    auto it = o.find("eos_token_id");
    if (it == o.end() || it->is_null()) return std::nullopt;
    std::vector<int64_t> out;
    if (it->is_number_integer()) {
      out.push_back(it->get<int64_t>());
    } else if (it->is_array()) {
      for (const auto& x : *it) {
        if (!x.is_number_integer())
          throw InputError(where + file + ": eos_token_id list holds a non-integer: " + x.dump());
        out.push_back(x.get<int64_t>());
      }
    } else {
      throw InputError(where + file +
                       ": eos_token_id must be an integer or a list of integers, found " +
                       it->dump());
    }
    return out;
  };
  if (auto v = parse(generation_config, "generation_config.json")) return *v;
  if (text_config)
    if (auto v = parse(*text_config, "config.json")) return *v;
  if (auto v = parse(config, "config.json")) return *v;
  return {};
}

CheckpointIndex parse_checkpoint_index(const nlohmann::json& index, const std::string& path) {
  CheckpointIndex out;
  if (!index.is_object()) throw InputError("'" + path + "': malformed index: not a JSON object");
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object())
    throw InputError("'" + path + "': malformed index: no \"weight_map\" object");
  if (wm->empty()) throw InputError("'" + path + "': malformed index: \"weight_map\" is empty");
  if (auto md = index.find("metadata"); md != index.end()) {
    if (!md->is_object() && !md->is_null())
      throw InputError("'" + path + "': malformed index: \"metadata\" is not an object");
    if (md->is_object()) out.metadata = *md;
  }
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string())
      throw InputError("'" + path + "': malformed index: the shard of tensor '" + it.key() +
                       "' is not a string");
    const std::string file = it.value().get<std::string>();
    // A shard is a file in this directory: no paths, so a crafted index cannot point elsewhere.
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        file.find('\\') != std::string::npos || file.find('\0') != std::string::npos)
      throw InputError("'" + path + "': malformed index: tensor '" + it.key() + "' names shard '" +
                       file + "', which is not a plain file name in the directory");
    out.by_shard[file].push_back(it.key());
    out.shard_of[it.key()] = file;
  }
  return out;
}

}  // namespace omni
