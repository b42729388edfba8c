#include "modalities/common/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "modalities/common/safetensors_header.h"

namespace omni {
namespace {

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  int64_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", at::kDouble, 8},    {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},
    {"BF16", at::kBFloat16, 2}, {"I64", at::kLong, 8},  {"I32", at::kInt, 4},
    {"I16", at::kShort, 2},     {"I8", at::kChar, 1},   {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
};

const DtypeInfo* dtype_by_name(const std::string& n) {
  for (const auto& d : kDtypes)
    if (n == d.name) return &d;
  return nullptr;
}

const DtypeInfo* dtype_by_type(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.type) return &d;
  return nullptr;
}

const std::string& known_dtypes() { return safetensors_known_dtypes(); }

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError("safetensors file '" + path + "': " + what);
}

// Owns the mapping; tensors hold a shared_ptr to it through their deleter context.
struct Mapping {
  void* base = nullptr;
  size_t size = 0;
  bool writable = false;  // PROT_WRITE on a MAP_PRIVATE mapping: copy on write
  ~Mapping() {
    if (base && base != MAP_FAILED) munmap(base, size);
  }
};

struct Entry {
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;  // relative to the data region
};

class MappedFile final : public SafeTensorsFile {
 public:
  explicit MappedFile(std::string path) : path_(std::move(path)) { load(); }

  const std::string& path() const override { return path_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    out.reserve(entries_.size());
    for (const auto& [k, v] : entries_) out.push_back(k);
    return out;
  }
  bool contains(const std::string& name) const override { return entries_.count(name) != 0; }
  at::Tensor get(const std::string& name) const override {
    const Entry& e = entry(name);
    const auto opts = at::TensorOptions().dtype(e.dtype->type);
    char* ptr = static_cast<char*>(map_->base) + data_offset_ + e.begin;
    if (e.end == e.begin) return at::empty(e.shape, opts);
    // Other writers may place tensors at offsets not aligned to the element size; a zero-copy
    // view would then be misaligned, so copy those.
    if (reinterpret_cast<uintptr_t>(ptr) % e.dtype->size != 0) {
      at::Tensor out = at::empty(e.shape, opts);
      std::memcpy(out.data_ptr(), ptr, e.end - e.begin);
      return out;
    }
    auto* holder = new std::shared_ptr<Mapping>(map_);
    // Copy on write (see the class comment): a write through this tensor changes this process's
    // private pages, never the file; with the PROT_READ fallback it faults.
    return at::from_blob(
        ptr, e.shape, [holder](void*) { delete holder; }, opts);
  }
  std::vector<int64_t> shape(const std::string& name) const override { return entry(name).shape; }
  at::ScalarType dtype(const std::string& name) const override { return entry(name).dtype->type; }
  const std::map<std::string, std::string>& metadata() const override { return metadata_; }
  bool maps(const void* p) const override {
    const auto* c = static_cast<const char*>(p);
    const auto* b = static_cast<const char*>(map_->base);
    return b && c >= b && c < b + map_->size;
  }
  bool copy_on_write() const override { return map_->writable; }

 private:
  const Entry& entry(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) fail(path_, "no tensor named '" + name + "'");
    return it->second;
  }

  void load() {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path_, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      fail(path_, std::string("cannot stat: ") + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(path_, "not a regular file");
    }
    map_ = std::make_shared<Mapping>();
    map_->size = static_cast<size_t>(st.st_size);
    if (map_->size < 8) {
      ::close(fd);
      fail(path_, "file is " + std::to_string(map_->size) +
                      " bytes, shorter than the 8-byte header length (truncated?)");
    }
    // Copy on write (see safetensors.h); read-only where the kernel refuses to commit that much.
    map_->base = mmap(nullptr, map_->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    map_->writable = map_->base != MAP_FAILED;
    if (map_->base == MAP_FAILED && errno == ENOMEM)
      map_->base = mmap(nullptr, map_->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);
    if (map_->base == MAP_FAILED) {
      map_->base = nullptr;
      fail(path_, std::string("mmap failed: ") + std::strerror(err));
    }
    const SafetensorsHeader h =
        parse_safetensors_header(static_cast<const unsigned char*>(map_->base), map_->size, path_);
    data_offset_ = h.data_offset;
    metadata_ = h.metadata;
    for (const auto& [name, he] : h.entries) {
      Entry e{};
      e.dtype = dtype_by_name(he.dtype);
      if (!e.dtype) fail(path_, "tensor '" + name + "': unknown dtype '" + he.dtype + "'");
      e.shape = he.shape;
      e.begin = he.begin;
      e.end = he.end;
      entries_.emplace(name, std::move(e));
    }
  }

  std::string path_;
  std::shared_ptr<Mapping> map_;
  uint64_t data_offset_ = 0;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace

std::shared_ptr<SafeTensorsFile> SafeTensorsFile::open(const std::string& path) {
  return std::make_shared<MappedFile>(path);
}

TensorMap SafeTensorsFile::all() const {
  TensorMap out;
  for (const auto& n : names()) out.emplace(n, get(n));
  return out;
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // std::map iterates in sorted key order, so the byte layout follows the sorted names.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  std::vector<at::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") throw InputError("save_safetensors: '__metadata__' is reserved");
    if (!t.defined())
      throw InputError("save_safetensors '" + path + "': tensor '" + name + "' is undefined");
    const DtypeInfo* d = dtype_by_type(t.scalar_type());
    if (!d)
      throw InputError("save_safetensors '" + path + "': tensor '" + name + "' has dtype " +
                       std::string(c10::toString(t.scalar_type())) +
                       " (supported: " + known_dtypes() + ")");
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * d->size;
    header[name] = {{"dtype", d->name},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    blobs.push_back(c);
  }
  std::string h = header.dump();
  // Pad with spaces so the data region starts 8-byte aligned (every dtype's view is aligned).
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw InputError("save_safetensors: cannot open '" + path + "' for writing");
  unsigned char len[8];
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  f.write(reinterpret_cast<const char*>(len), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& c : blobs)
    f.write(static_cast<const char*>(c.data_ptr()),
            static_cast<std::streamsize>(c.numel() * c.element_size()));
  f.flush();
  if (!f) throw InputError("save_safetensors: write to '" + path + "' failed");
}

}  // namespace omni
