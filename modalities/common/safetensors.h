// safetensors reading (memory-mapped, strictly validated) and writing (DESIGN.md section 4).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace omni {

using TensorMap = std::map<std::string, at::Tensor>;

// A validated, memory-mapped safetensors file. Tensors returned by get() are zero-copy views of
// the mapping (unless misaligned, then copies) and keep it alive through their deleter, so they
// outlive this object. Every malformed file gives an InputError naming the file and the problem:
// header size bound, JSON well-formed, known dtype, shape x dtype size == byte range, ranges
// inside the file and not overlapping.
//
// The file is mapped MAP_PRIVATE with PROT_READ | PROT_WRITE: copy on write. Nothing is ever
// written back to the file, and a write through a view (an in-place op on a weight that a model
// uses in place, see LoadOptions::map_weights) gives that process a private copy of the pages it
// touches instead of a crash. Where the kernel refuses a writable private mapping (strict
// overcommit accounting, vm.overcommit_memory=2, counts its whole size), the file is mapped
// PROT_READ instead: copy_on_write() is then false, writes through a view fault, and loaders copy.
class SafeTensorsFile {
 public:
  static std::shared_ptr<SafeTensorsFile> open(const std::string& path);
  virtual ~SafeTensorsFile() = default;

  virtual const std::string& path() const = 0;
  virtual std::vector<std::string> names() const = 0;  // sorted
  virtual bool contains(const std::string& name) const = 0;
  virtual at::Tensor get(const std::string& name) const = 0;  // throws InputError if absent
  virtual std::vector<int64_t> shape(const std::string& name) const = 0;
  // The stored dtype, without reading (or copying) the tensor's bytes.
  virtual at::ScalarType dtype(const std::string& name) const = 0;
  virtual const std::map<std::string, std::string>& metadata() const = 0;
  // True when `p` points into this file's mapping (a zero-copy view's data_ptr does).
  virtual bool maps(const void* p) const = 0;
  // True when the mapping is copy-on-write (writes through views are safe and private).
  virtual bool copy_on_write() const = 0;
  TensorMap all() const;
};

// Writes tensors (made contiguous, on CPU) with optional string metadata (__metadata__).
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace omni
