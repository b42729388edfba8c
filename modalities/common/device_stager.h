// DeviceStager: moves host tensors (frames, audio, features) to the compute device through
// reused pinned staging buffers and asynchronous copies on a side stream (CUDA builds only).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>

namespace omni {

// One per node (not thread-safe; a node runs one process() at a time). On the CPU, or in a
// build without OMNI_CUDA, to_device() is a plain (synchronous) copy and nothing is pinned.
//
// CUDA path, for each call:
//  1. pick the next of `slots` pinned host buffers (grown when too small, otherwise reused) and
//     wait until the copy that last read it has finished (its CUDA event), then memcpy the
//     host data into it;
//  2. on a side stream: allocate the destination and enqueue the host-to-device copy, then
//     record the slot's event;
//  3. make the caller's current stream wait for that event (no host synchronisation), and
//     record the destination on the current stream so the caching allocator does not hand its
//     memory out again while kernels queued there still read it.
// The returned tensor is therefore safe to use on the caller's current stream immediately.
class DeviceStager {
 public:
  explicit DeviceStager(at::Device device, int slots = 2);
  ~DeviceStager();
  DeviceStager(const DeviceStager&) = delete;
  DeviceStager& operator=(const DeviceStager&) = delete;

  const at::Device& device() const { return device_; }
  // True when copies go through pinned buffers and a side stream.
  bool async() const;

  // `host` must be a CPU tensor (any layout; made contiguous first). Returns a tensor with the
  // same values on device() (the same tensor when device() is the CPU).
  at::Tensor to_device(const at::Tensor& host);
  // Same for raw host memory holding `sizes` elements of `type` (e.g. a cv::Mat's pixels),
  // copied straight into the pinned buffer without an intermediate tensor.
  at::Tensor to_device(const void* data, at::IntArrayRef sizes, at::ScalarType type);

  // Statistics for tests and benchmarks: copies made and pinned-buffer (re)allocations.
  int64_t copies() const { return copies_; }
  int64_t pinned_allocations() const { return pinned_allocations_; }

 private:
  struct Impl;
  at::Device device_;
  std::unique_ptr<Impl> impl_;
  int64_t copies_ = 0;
  int64_t pinned_allocations_ = 0;
};

}  // namespace omni
