#include "modalities/common/checkpoint.h"

#include <ATen/ATen.h>
#include <sys/stat.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "core/error.h"
#include "modalities/common/checkpoint_inspect.h"
#include "modalities/common/weights.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

// JSON files of a checkpoint are small; a bigger one is not what it claims to be, and refusing
// it before reading bounds memory (the index of a 1T-parameter model is a few MB).
constexpr uint64_t kMaxConfigBytes = 16ull << 20;
constexpr uint64_t kMaxIndexBytes = 64ull << 20;
// Problems listed per category in one error message.
constexpr size_t kMaxListed = 20;

bool starts_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

// Reads and parses a JSON file after checking its real size against `max_bytes`.
nlohmann::json read_json_file(const fs::path& path, uint64_t max_bytes) {
  const std::string p = path.string();
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) throw InputError("'" + p + "': cannot stat");
  if (!S_ISREG(st.st_mode)) throw InputError("'" + p + "': not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    throw InputError("'" + p + "': " + std::to_string(st.st_size) + " bytes exceeds the bound of " +
                     std::to_string(max_bytes) + " bytes for this JSON file");
  std::ifstream f(p, std::ios::binary);
  if (!f) throw InputError("'" + p + "': cannot open");
  std::string text(static_cast<size_t>(st.st_size), '\0');
  f.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (static_cast<size_t>(f.gcount()) != text.size())
    throw InputError("'" + p + "': short read (file changed while reading?)");
  return parse_checkpoint_json(text, p);
}

std::string join_limited(const std::vector<std::string>& v, const std::string& sep = "; ") {
  std::string s;
  for (size_t i = 0; i < v.size() && i < kMaxListed; ++i) s += (i ? sep : "") + v[i];
  if (v.size() > kMaxListed)
    s += sep + "... and " + std::to_string(v.size() - kMaxListed) + " more";
  return s;
}

// A destination can use the mapped source in place when it is a whole, unshared, contiguous CPU
// tensor of the same dtype and shape, and the source is a copy-on-write view of the mapping (not
// the copy SafeTensorsFile::get makes of a misaligned tensor). An empty tensor gains nothing.
bool can_use_in_place(const at::Tensor& dst, const at::Tensor& src, const SafeTensorsFile& file) {
  if (!dst.device().is_cpu() || dst.scalar_type() != src.scalar_type() ||
      dst.sizes() != src.sizes() || dst.numel() == 0)
    return false;
  if (!file.copy_on_write() || !file.maps(src.data_ptr())) return false;
  if (dst.is_view() || !dst.is_contiguous() || dst.storage_offset() != 0 || !dst.has_storage())
    return false;
  // Another tensor sharing the storage (a view made without autograd's view tracking, a fused
  // weight's slice) would keep the old bytes: copy into it instead.
  if (dst.storage().use_count() != 1) return false;
  return dst.storage().nbytes() == static_cast<size_t>(dst.numel()) * dst.element_size();
}

}  // namespace

std::string safetensors_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kDouble:
      return "F64";
    case at::kFloat:
      return "F32";
    case at::kHalf:
      return "F16";
    case at::kBFloat16:
      return "BF16";
    case at::kLong:
      return "I64";
    case at::kInt:
      return "I32";
    case at::kShort:
      return "I16";
    case at::kChar:
      return "I8";
    case at::kByte:
      return "U8";
    case at::kBool:
      return "BOOL";
    default:
      return c10::toString(t);
  }
}

std::shared_ptr<Checkpoint> Checkpoint::open(const std::string& dir) {
  std::shared_ptr<Checkpoint> c(new Checkpoint());
  c->dir_ = dir;
  const std::string where = "checkpoint '" + dir + "': ";
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw InputError(where +
                     "not a directory (expected a Hugging Face model directory with "
                     "config.json and *.safetensors)");
  const fs::path cfg = fs::path(dir) / "config.json";
  if (!fs::exists(cfg, ec))
    throw InputError(where + "no config.json (expected a Hugging Face model directory)");
  c->config_ = read_json_file(cfg, kMaxConfigBytes);
  if (!c->config_.is_object()) throw InputError("'" + cfg.string() + "': not a JSON object");
  const fs::path gen = fs::path(dir) / "generation_config.json";
  if (fs::exists(gen, ec)) {
    c->generation_config_ = read_json_file(gen, kMaxConfigBytes);
    if (!c->generation_config_.is_object())
      throw InputError("'" + gen.string() + "': not a JSON object");
  } else {
    c->generation_config_ = nlohmann::json::object();
  }

  c->family_ = &detect_model_family(c->config_);
  c->read_weights();
  c->build_names();
  return c;
}

void Checkpoint::read_weights() {
  const std::string where = "checkpoint '" + dir_ + "': ";
  const fs::path index_path = fs::path(dir_) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir_) / "model.safetensors";
  std::error_code ec;
  auto open_shard = [&](const std::string& file) {
    try {
      return SafeTensorsFile::open((fs::path(dir_) / file).string());
    } catch (const InputError& e) {
      throw InputError(where + "shard '" + file + "': " + e.what());
    }
  };
  if (fs::exists(index_path, ec)) {
    has_index_ = true;
    const std::string ip = index_path.string();
    nlohmann::json index = read_json_file(index_path, kMaxIndexBytes);
    CheckpointIndex parsed = parse_checkpoint_index(index, ip);
    index_metadata_ = std::move(parsed.metadata);
    shard_of_ = std::move(parsed.shard_of);
    const auto& by_shard = parsed.by_shard;
    for (const auto& [file, names] : by_shard) {
      if (!fs::exists(fs::path(dir_) / file, ec))
        throw InputError(where + "missing shard '" + file + "': the index lists " +
                         std::to_string(names.size()) + " tensors in it (e.g. '" + names.front() +
                         "')");
      auto sf = open_shard(file);
      std::vector<std::string> absent;
      for (const auto& n : names)
        if (!sf->contains(n)) absent.push_back("'" + n + "'");
      if (!absent.empty())
        throw InputError(where + "shard '" + file + "' does not contain " +
                         std::to_string(absent.size()) +
                         " tensor(s) that the index lists in it: " + join_limited(absent, ", "));
      std::vector<std::string> stray;
      for (const auto& n : sf->names()) {
        auto it = shard_of_.find(n);
        if (it == shard_of_.end() || it->second != file)
          stray.push_back("'" + n + "'" +
                          (it == shard_of_.end() ? "" : " (indexed in '" + it->second + "')"));
      }
      if (!stray.empty())
        throw InputError(where + "shard '" + file + "' holds " + std::to_string(stray.size()) +
                         " tensor(s) that the index does not list in it (stale index?): " +
                         join_limited(stray, ", "));
      shards_[file] = std::move(sf);
    }
    return;
  }
  if (fs::exists(single, ec)) {
    auto sf = open_shard("model.safetensors");
    for (const auto& n : sf->names()) shard_of_[n] = "model.safetensors";
    shards_["model.safetensors"] = std::move(sf);
    return;
  }
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) found.push_back(n);
    if (n == "pytorch_model.bin" || n == "pytorch_model.bin.index.json") found.push_back(n);
  }
  std::sort(found.begin(), found.end());
  std::string msg =
      where + "no weights: expected model.safetensors or model.safetensors.index.json";
  if (!found.empty()) msg += " (found: " + join_limited(found, ", ") + ")";
  if (std::find(found.begin(), found.end(), "pytorch_model.bin") != found.end() ||
      std::find(found.begin(), found.end(), "pytorch_model.bin.index.json") != found.end())
    msg +=
        "; only safetensors weights are read (pickled .bin files are not; convert them with "
        "transformers' save_pretrained(..., safe_serialization=True))";
  throw InputError(msg);
}

std::optional<std::string> Checkpoint::map_name(const std::string& hub) const {
  return family_map_name(*family_, hub);
}

void Checkpoint::build_names() {
  for (const auto& [hub, file] : shard_of_) {
    auto ours = map_name(hub);
    if (!ours) {
      unused_.push_back(hub);
      continue;
    }
    auto [it, inserted] = hub_of_.emplace(*ours, hub);
    if (!inserted)
      throw InputError("checkpoint '" + dir_ + "': tensors '" + it->second + "' and '" + hub +
                       "' both map to '" + *ours + "' (model family " + family_->name + ")");
  }
  // Tied weights: the text config (or the root) says the head shares the embedding.
  bool tie = false;
  for (const nlohmann::json* c :
       std::initializer_list<const nlohmann::json*>{tower_config("text"), &config_}) {
    if (c && c->contains("tie_word_embeddings") && (*c)["tie_word_embeddings"].is_boolean()) {
      tie = (*c)["tie_word_embeddings"].get<bool>();
      break;
    }
  }
  if (tie)
    for (const auto& r : family_->tied)
      if (!hub_of_.count(r.from) && hub_of_.count(r.to)) {
        hub_of_[r.from] = hub_of_[r.to];
        aliases_.insert(r.from);
      }
}

std::string Checkpoint::architecture() const {
  if (auto a = config_.find("architectures");
      a != config_.end() && a->is_array() && !a->empty() && a->front().is_string())
    return a->front().get<std::string>();
  return model_type();
}

std::string Checkpoint::model_type() const {
  if (auto m = config_.find("model_type"); m != config_.end() && m->is_string())
    return m->get<std::string>();
  return "";
}

const nlohmann::json* Checkpoint::tower_config(const std::string& tower) const {
  return family_tower_config(*family_, config_, tower);
}

std::vector<std::string> Checkpoint::towers() const {
  std::vector<std::string> out;
  for (const auto& t : family_->towers)
    if (tower_config(t.first)) out.push_back(t.first);
  return out;
}

TowerSummary Checkpoint::tower_summary(const std::string& tower) const {
  return summarize_tower(tower, tower_config(tower));
}

std::vector<int64_t> Checkpoint::eos_token_ids() const {
  return checkpoint_eos_token_ids(config_, generation_config_, tower_config("text"),
                                  "checkpoint '" + dir_ + "': ");
}

std::optional<int64_t> Checkpoint::pad_token_id() const {
  for (const nlohmann::json* o : {&generation_config_, tower_config("text"), &config_}) {
    if (!o) continue;
    auto it = o->find("pad_token_id");
    if (it != o->end() && it->is_number_integer()) return it->get<int64_t>();
  }
  return std::nullopt;
}

std::vector<std::string> Checkpoint::hub_names() const {
  std::vector<std::string> out;
  out.reserve(shard_of_.size());
  for (const auto& kv : shard_of_) out.push_back(kv.first);
  return out;
}

std::vector<std::string> Checkpoint::shards() const {
  std::vector<std::string> out;
  for (const auto& kv : shards_) out.push_back(kv.first);
  return out;
}

TensorInfo Checkpoint::hub_info(const std::string& hub) const {
  auto it = shard_of_.find(hub);
  if (it == shard_of_.end())
    throw InputError("checkpoint '" + dir_ + "': no tensor named '" + hub + "'");
  const auto& f = *shards_.at(it->second);
  TensorInfo ti;
  ti.hub_name = hub;
  ti.shard = it->second;
  ti.dtype = f.dtype(hub);
  ti.shape = f.shape(hub);
  int64_t n = 1;
  for (auto d : ti.shape) n *= d;  // sizes were checked against the file by SafeTensorsFile
  ti.nbytes = n * static_cast<int64_t>(c10::elementSize(ti.dtype));
  return ti;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(hub_of_.size());
  for (const auto& kv : hub_of_) out.push_back(kv.first);
  return out;
}

bool Checkpoint::contains(const std::string& name) const { return hub_of_.count(name) != 0; }

TensorInfo Checkpoint::info(const std::string& name) const {
  auto it = hub_of_.find(name);
  if (it == hub_of_.end())
    throw InputError("checkpoint '" + dir_ + "': no tensor '" + name + "' (model family " +
                     family_->name + "; unused groups are not loadable)");
  return hub_info(it->second);
}

std::vector<std::string> Checkpoint::unused_hub_names() const { return unused_; }

std::vector<std::string> Checkpoint::unused_groups() const {
  std::vector<std::string> out;
  for (const auto& u : family_->unused)
    for (const auto& h : unused_)
      if (starts_with(h, u)) {
        out.push_back(u);
        break;
      }
  return out;
}

at::Tensor Checkpoint::get(const std::string& name, const DtypeRequest& dtype) const {
  return hub_get(info(name).hub_name, dtype);
}

at::Tensor Checkpoint::hub_get(const std::string& hub, const DtypeRequest& dtype) const {
  const TensorInfo ti = hub_info(hub);
  const std::string& name = hub;
  at::Tensor t = shards_.at(ti.shard)->get(ti.hub_name);
  if (dtype.to && t.is_floating_point() && t.scalar_type() != *dtype.to &&
      !(dtype.keep_bf16 && t.scalar_type() == at::kBFloat16)) {
    if (!c10::isFloatingType(*dtype.to))
      throw InputError("checkpoint '" + dir_ + "': tensor '" + name + "' (shard '" + ti.shard +
                       "'): cannot convert " + safetensors_dtype_name(ti.dtype) + " to " +
                       safetensors_dtype_name(*dtype.to) + " (only floating dtypes convert)");
    t = t.to(*dtype.to);
  }
  return t;
}

bool Checkpoint::maps(const at::Tensor& t) const {
  if (!t.defined() || !t.device().is_cpu() || !t.has_storage() || t.numel() == 0) return false;
  const auto p = reinterpret_cast<uintptr_t>(t.data_ptr());
  // Lines of /proc/self/maps: "start-end perms offset dev inode   path".
  std::ifstream f("/proc/self/maps");
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode;
    std::getline(in >> std::ws, path);
    const size_t dash = range.find('-');
    if (dash == std::string::npos) continue;
    const uintptr_t lo = std::stoull(range.substr(0, dash), nullptr, 16);
    const uintptr_t hi = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (p < lo || p >= hi) continue;
    std::error_code ec;
    for (const auto& kv : shards_)
      if (!path.empty() && fs::equivalent(path, fs::path(dir_) / kv.first, ec)) return true;
    return false;
  }
  return false;
}

LoadReport Checkpoint::load_into(torch::nn::Module& module, const LoadOptions& opt) const {
  std::vector<std::pair<std::string, at::Tensor>> dst;
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    dst.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true))
    dst.emplace_back(item.key(), item.value());
  return load_into(dst, opt);
}

LoadReport Checkpoint::load_into(const std::vector<std::pair<std::string, at::Tensor>>& dst,
                                 const LoadOptions& opt) const {
  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> used;
  std::vector<std::pair<at::Tensor, TensorInfo>> copies;
  auto ignorable = [&](const std::string& n) {
    for (const auto& s : opt.ignore_missing)
      if (n == s || (n.size() > s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0 &&
                     n[n.size() - s.size() - 1] == '.'))
        return true;
    return false;
  };
  auto describe = [](const TensorInfo& ti) {
    return "hub '" + ti.hub_name + "' in shard '" + ti.shard + "'";
  };
  for (const auto& [name, t] : dst) {
    const std::string ours = opt.prefix + name;
    if (!t.defined()) continue;
    if (!contains(ours)) {
      if (!ignorable(name))
        missing.push_back("'" + ours + "' (module expects " + shape_str(t.sizes()) + " " +
                          safetensors_dtype_name(t.scalar_type()) + ")");
      continue;
    }
    used.insert(ours);
    const TensorInfo ti = info(ours);
    if (at::IntArrayRef(ti.shape) != t.sizes()) {
      mismatched.push_back("'" + ours + "' (" + describe(ti) + "): checkpoint has " +
                           shape_str(ti.shape) + " " + safetensors_dtype_name(ti.dtype) +
                           ", module expects " + shape_str(t.sizes()) + " " +
                           safetensors_dtype_name(t.scalar_type()));
      continue;
    }
    const bool both_float = c10::isFloatingType(ti.dtype) && c10::isFloatingType(t.scalar_type());
    if (!both_float && ti.dtype != t.scalar_type()) {
      mismatched.push_back("'" + ours + "' (" + describe(ti) + "): checkpoint dtype " +
                           safetensors_dtype_name(ti.dtype) + ", module expects " +
                           safetensors_dtype_name(t.scalar_type()) +
                           " (only floating dtypes convert)");
      continue;
    }
    copies.emplace_back(t, ti);
  }
  if (!opt.allow_unexpected)
    for (const auto& [ours, hub] : hub_of_)
      if (starts_with(ours, opt.prefix) && !used.count(ours) && !aliases_.count(ours)) {
        const TensorInfo ti = info(ours);
        unexpected.push_back("'" + ours + "' (" + describe(ti) + ", " + shape_str(ti.shape) + " " +
                             safetensors_dtype_name(ti.dtype) + ")");
      }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string msg =
        "checkpoint '" + dir_ + "' (model family " + family_->name + ") does not match the module" +
        (opt.prefix.empty() ? "" : " (prefix '" + opt.prefix + "')") + "; nothing was loaded.";
    if (!missing.empty())
      msg +=
          "\n  missing tensors (" + std::to_string(missing.size()) + "): " + join_limited(missing);
    if (!unexpected.empty())
      msg += "\n  unexpected tensors (" + std::to_string(unexpected.size()) +
             "): " + join_limited(unexpected);
    if (!mismatched.empty())
      msg += "\n  shape/dtype mismatches (" + std::to_string(mismatched.size()) +
             "): " + join_limited(mismatched);
    throw InputError(msg);
  }
  // Copy only after everything checked, so a bad checkpoint leaves the module untouched.
  LoadReport rep;
  at::NoGradGuard no_grad;
  // Weights used in place come from this call's own mappings of the shards (see map_weights).
  std::map<std::string, std::shared_ptr<SafeTensorsFile>> own;
  auto own_file = [&](const std::string& shard) -> const SafeTensorsFile& {
    auto it = own.find(shard);
    if (it == own.end())
      it = own.emplace(shard, SafeTensorsFile::open((fs::path(dir_) / shard).string())).first;
    return *it->second;
  };
  for (auto& [t, ti] : copies) {
    const SafeTensorsFile& file = *shards_.at(ti.shard);
    try {
      at::Tensor src = file.get(ti.hub_name);
      bool mapped = false;
      if (opt.map_weights && can_use_in_place(t, src, file)) {
        const SafeTensorsFile& mine = own_file(ti.shard);
        at::Tensor fresh = mine.get(ti.hub_name);
        // (Unless the file changed since open(): then the checked bytes are copied.)
        if (can_use_in_place(t, fresh, mine)) {
          // The tensor object (the module's parameter) now uses the mapped bytes; its old
          // storage is released. set_data keeps the object: module members and lists see it.
          t.set_data(fresh);
          mapped = true;
          ++rep.mapped_tensors;
          rep.mapped_bytes += ti.nbytes;
        }
      }
      if (!mapped) t.copy_(src);  // converts dtype and device
    } catch (const c10::Error& e) {
      throw InputError("checkpoint '" + dir_ + "': copying " + describe(ti) +
                       " into the module failed: " + e.what_without_backtrace());
    }
    ++rep.tensors;
    rep.bytes += ti.nbytes;
  }
  rep.skipped_unused = unused_groups();
  return rep;
}

// ---- omnipipe inspect ----

nlohmann::json inspect_checkpoint(const std::string& dir) {
  auto c = Checkpoint::open(dir);
  nlohmann::json j;
  j["path"] = dir;
  j["architecture"] = c->architecture();
  j["model_type"] = c->model_type();
  j["family"] = c->family().name;
  const auto unused_prefixes = c->family().unused;
  auto tower_used = [&](const std::string& t) {
    return std::find(unused_prefixes.begin(), unused_prefixes.end(), t + ".") ==
           unused_prefixes.end();
  };
  nlohmann::json towers = nlohmann::json::object();
  for (const auto& t : c->towers()) {
    const TowerSummary s = c->tower_summary(t);
    nlohmann::json o = nlohmann::json::object();
    if (!s.model_type.empty()) o["model_type"] = s.model_type;
    for (const auto& [k, v] : s.ints) o[k] = v;
    for (const auto& [k, v] : s.floats) o[k] = v;
    for (const auto& [k, v] : s.lists) o[k] = v;
    for (const auto& [k, v] : s.flags) o[k] = v;
    o["used"] = tower_used(t);
    towers[t] = o;
  }
  j["towers"] = towers;
  nlohmann::json gen = nlohmann::json::object();
  gen["eos_token_ids"] = c->eos_token_ids();
  if (auto p = c->pad_token_id()) gen["pad_token_id"] = *p;
  j["generation"] = gen;

  int64_t total = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> dtypes, shards, groups;
  for (const auto& h : c->hub_names()) {
    const TensorInfo ti = c->hub_info(h);
    total += ti.nbytes;
    auto add = [&](std::pair<int64_t, int64_t>& p) {
      p.first += 1;
      p.second += ti.nbytes;
    };
    add(dtypes[safetensors_dtype_name(ti.dtype)]);
    add(shards[ti.shard]);
    add(groups[h.substr(0, h.find('.') == std::string::npos ? h.size() : h.find('.') + 1)]);
  }
  j["tensors"] = c->hub_names().size();
  j["total_bytes"] = total;
  nlohmann::json dj = nlohmann::json::object();
  for (const auto& [k, v] : dtypes) dj[k] = {{"tensors", v.first}, {"bytes", v.second}};
  j["dtypes"] = dj;
  nlohmann::json sj = nlohmann::json::array();
  for (const auto& [k, v] : shards)
    sj.push_back({{"file", k}, {"tensors", v.first}, {"bytes", v.second}});
  j["shards"] = sj;
  j["index"] = c->has_index();
  if (c->index_metadata().contains("total_size"))
    j["index_total_size"] = c->index_metadata()["total_size"];
  nlohmann::json gj = nlohmann::json::array();
  for (const auto& [k, v] : groups) {
    bool used = true;
    for (const auto& u : unused_prefixes) used = used && !starts_with(k, u);
    gj.push_back({{"prefix", k}, {"tensors", v.first}, {"bytes", v.second}, {"used", used}});
  }
  j["groups"] = gj;
  j["unused_groups"] = c->unused_groups();
  int64_t unused_bytes = 0;
  for (const auto& h : c->unused_hub_names()) unused_bytes += c->hub_info(h).nbytes;
  j["unused_tensors"] = c->unused_hub_names().size();
  j["unused_bytes"] = unused_bytes;
  return j;
}

namespace {

std::string human_bytes(int64_t b) {
  char buf[64];
  if (b < 1024) return std::to_string(b) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = -1;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace

std::string inspect_to_text(const nlohmann::json& j) {
  std::ostringstream o;
  o << "checkpoint    " << j.value("path", "") << "\n";
  o << "architecture  " << j.value("architecture", "") << " (model_type "
    << j.value("model_type", "") << ", family " << j.value("family", "") << ")\n";
  o << "towers\n";
  // The JSON object sorts its keys; print the towers in reading order instead.
  std::vector<std::string> order;
  for (const char* t : {"text", "vision", "audio"})
    if (j.at("towers").contains(t)) order.push_back(t);
  for (const auto& [name, t] : j.at("towers").items())
    if (std::find(order.begin(), order.end(), name) == order.end()) order.push_back(name);
  for (const auto& name : order) {
    const nlohmann::json& t = j.at("towers").at(name);
    o << "  " << name;
    for (size_t i = name.size(); i < 8; ++i) o << ' ';
    for (const auto& [k, v] : t.items()) {
      if (k == "used" || k == "model_type") continue;
      o << " " << k << "=" << (v.is_string() ? v.get<std::string>() : v.dump());
    }
    if (!t.value("used", true)) o << "  (not used)";
    o << "\n";
  }
  const auto& g = j.at("generation");
  o << "generation    eos " << g.at("eos_token_ids").dump();
  if (g.contains("pad_token_id")) o << ", pad " << g["pad_token_id"].dump();
  o << "\n";
  o << "tensors       " << j.at("tensors").get<int64_t>() << " ("
    << human_bytes(j.at("total_bytes").get<int64_t>()) << ", " << j.at("total_bytes").dump()
    << " bytes)\n";
  o << "dtypes       ";
  const char* sep = " ";
  for (const auto& [k, v] : j.at("dtypes").items()) {
    o << sep << k << ": " << v.at("tensors").dump() << " tensors, "
      << human_bytes(v.at("bytes").get<int64_t>());
    sep = "; ";
  }
  o << "\n";
  o << "shards        " << j.at("shards").size() << (j.value("index", false) ? " (indexed)" : "")
    << "\n";
  for (const auto& s : j.at("shards"))
    o << "  " << s.at("file").get<std::string>() << "  " << s.at("tensors").dump() << " tensors, "
      << human_bytes(s.at("bytes").get<int64_t>()) << "\n";
  o << "groups\n";
  for (const auto& s : j.at("groups"))
    o << "  " << s.at("prefix").get<std::string>() << "  " << s.at("tensors").dump() << " tensors, "
      << human_bytes(s.at("bytes").get<int64_t>())
      << (s.at("used").get<bool>() ? "" : "  (not used by omnipipe)") << "\n";
  return o.str();
}

}  // namespace omni
