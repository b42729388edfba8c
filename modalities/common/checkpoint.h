// Hugging Face checkpoint directories: config.json, generation_config.json and safetensors weights
// (one file or an index + shards), memory-mapped, renamed to our module names, loaded by name.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "modalities/common/checkpoint_config.h"
#include "modalities/common/safetensors.h"

namespace torch::nn {
class Module;
}

namespace omni {

// Where a tensor lives and what it is, without reading its bytes.
struct TensorInfo {
  std::string hub_name;  // name in the checkpoint
  std::string shard;     // file name inside the directory
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  int64_t nbytes = 0;
};

// dtype on load: `to` converts floating tensors (bf16/fp16/fp32/fp64) to that dtype; keep_bf16
// leaves bf16 tensors as they are even when `to` says otherwise. Integer tensors never convert.
struct DtypeRequest {
  std::optional<at::ScalarType> to;
  bool keep_bf16 = false;
};

struct LoadOptions {
  LoadOptions() = default;
  LoadOptions(std::string p) : prefix(std::move(p)) {}  // NOLINT: load_into(m, {"vision."})
  // Only our names under this prefix are loaded; the module's names are relative to it
  // (e.g. "vision." loads vision.blocks.0.attn.q.weight into blocks.0.attn.q.weight).
  std::string prefix;
  // Module tensors the checkpoint need not provide (computed buffers such as rotary inv_freq):
  // a module name matches when it equals an entry or ends with "." + entry.
  std::vector<std::string> ignore_missing;
  // Checkpoint tensors under `prefix` that the module lacks are an error unless this is set.
  bool allow_unexpected = false;
  // Zero-copy loading: where a destination is a whole CPU tensor (no view, no other tensor
  // sharing its storage) of the checkpoint tensor's dtype and the mapped bytes are aligned to the
  // element size and copy-on-write (SafeTensorsFile::copy_on_write), the destination is made to
  // USE the mapped bytes (set_data) instead of receiving a copy: the weights are not held twice
  // (once in the page cache, once in the module), and loading reads no bytes. Each load_into call
  // maps the shards it uses anew, so modules loaded by different calls (and get()) never share
  // pages: a write to a weight (copy on write: it costs a page copy, never reaches the file) is
  // seen by that module only, as with copies. The mapping lives as long as any tensor uses it; the
  // Checkpoint object may go. The destination tensor object is re-pointed, not written.
  // Converting, misaligned, device or view destinations are copied as before. Off: every
  // destination receives a copy in anonymous memory.
  bool map_weights = true;
};

struct LoadReport {
  int64_t tensors = 0;         // loaded into the module (copied or mapped)
  int64_t bytes = 0;           // their bytes in the checkpoint
  int64_t mapped_tensors = 0;  // of those, used in place (LoadOptions::map_weights)
  int64_t mapped_bytes = 0;
  std::vector<std::string> skipped_unused;  // unused group prefixes present in the checkpoint
};

// An opened checkpoint directory. open() reads and checks config.json, generation_config.json
// (optional), the index and every shard header (each shard's header is validated by
// SafeTensorsFile; the index must agree with the shards exactly), but reads no tensor bytes:
// tensors are memory-mapped and read by name on demand. Every problem is an InputError naming
// the directory, the file, the tensor and what was expected.
class Checkpoint {
 public:
  static std::shared_ptr<Checkpoint> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  // {} when the directory has no generation_config.json.
  const nlohmann::json& generation_config() const { return generation_config_; }
  const ModelFamily& family() const { return *family_; }
  std::string architecture() const;  // architectures[0], else model_type, else ""
  std::string model_type() const;

  // Tower configs as transformers wrote them (nested thinker_config.text_config, ... or the flat
  // root of a plain language model), by tower name; nullptr when the checkpoint has no such tower.
  const nlohmann::json* tower_config(const std::string& tower) const;
  std::vector<std::string> towers() const;  // names with a config, in family order
  TowerSummary tower_summary(const std::string& tower) const;
  // eos ids from generation_config.json (int or list), else from the text config, else root.
  std::vector<int64_t> eos_token_ids() const;
  std::optional<int64_t> pad_token_id() const;

  // Every tensor in the checkpoint (hub names, sorted) and the shard files (sorted).
  std::vector<std::string> hub_names() const;
  std::vector<std::string> shards() const;
  bool has_index() const { return has_index_; }
  const nlohmann::json& index_metadata() const { return index_metadata_; }
  TensorInfo hub_info(const std::string& hub_name) const;

  // Our names (after stripping and renaming; unused groups excluded), sorted.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  TensorInfo info(const std::string& name) const;
  // Hub names under the family's unused prefixes (never loaded), and those prefixes that occur.
  std::vector<std::string> unused_hub_names() const;
  std::vector<std::string> unused_groups() const;
  // Our name for a hub name; nullopt for tensors of unused groups.
  std::optional<std::string> map_name(const std::string& hub_name) const;

  // The tensor (our name), converted per `dtype`. Without a conversion the result is a read-only
  // zero-copy view of the mapping: clone() before writing to it.
  at::Tensor get(const std::string& name, const DtypeRequest& dtype = {}) const;
  // The same by hub name, for any tensor including those of unused groups.
  at::Tensor hub_get(const std::string& hub_name, const DtypeRequest& dtype = {}) const;
  // True when the tensor's data lies in a memory mapping of one of this checkpoint's shard files
  // (a view from get(), or a weight loaded in place by LoadOptions::map_weights); reads
  // /proc/self/maps, for tests and diagnostics.
  bool maps(const at::Tensor& t) const;

  // Loads every parameter and buffer of `module` from the tensors under opt.prefix. Checks all
  // of them first (missing, unexpected, shape, dtype kind) and throws one InputError listing every
  // problem with the shard file, expected and found shape/dtype; only when all pass does it copy
  // (converting to each module tensor's dtype and device) or map (LoadOptions::map_weights), so
  // a bad checkpoint leaves the module untouched.
  LoadReport load_into(torch::nn::Module& module, const LoadOptions& opt = {}) const;
  // The same for an explicit list of destination tensors (name relative to opt.prefix).
  LoadReport load_into(const std::vector<std::pair<std::string, at::Tensor>>& destinations,
                       const LoadOptions& opt = {}) const;

 private:
  Checkpoint() = default;
  void read_weights();
  void build_names();

  std::string dir_;
  nlohmann::json config_, generation_config_, index_metadata_;
  const ModelFamily* family_ = nullptr;
  bool has_index_ = false;
  std::map<std::string, std::shared_ptr<SafeTensorsFile>> shards_;  // file name -> file
  std::map<std::string, std::string> shard_of_;                     // hub name -> file name
  std::map<std::string, std::string> hub_of_;                       // our name -> hub name
  std::vector<std::string> unused_;                                 // hub names skipped
  std::set<std::string> aliases_;  // our names that a tied weight provides
};

// Safetensors dtype names ("F32", "BF16", ...) for summaries.
std::string safetensors_dtype_name(at::ScalarType t);

}  // namespace omni
