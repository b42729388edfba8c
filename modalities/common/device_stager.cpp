#include "modalities/common/device_stager.h"

#include <ATen/ATen.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

#ifdef OMNI_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace omni {

#ifdef OMNI_CUDA
struct DeviceStager::Impl {
  struct Slot {
    at::Tensor pinned;           // uint8 pinned host buffer, reused while large enough
    at::cuda::CUDAEvent copied;  // recorded on the side stream after the copy that read `pinned`
    bool in_flight = false;
  };
  explicit Impl(int n) : slots(static_cast<size_t>(n)) {}
  std::vector<Slot> slots;
  size_t next = 0;
  std::optional<c10::cuda::CUDAStream> side;
};
#else
struct DeviceStager::Impl {};
#endif

DeviceStager::DeviceStager(at::Device device, int slots) : device_(device) {
  if (slots < 1)
    throw ConfigError("DeviceStager: slots must be >= 1, got " + std::to_string(slots));
#ifdef OMNI_CUDA
  if (device_.is_cuda()) {
    try {
      if (!device_.has_index())
        device_ = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(c10::cuda::current_device()));
      impl_ = std::make_unique<Impl>(slots);
      impl_->side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.index());
    } catch (const c10::Error& e) {
      throw ConfigError("DeviceStager: cannot use device " + device_.str() +
                        " (no usable CUDA device?): " + e.what_without_backtrace());
    }
  }
#endif
}

DeviceStager::~DeviceStager() = default;

bool DeviceStager::async() const { return impl_ != nullptr; }

at::Tensor DeviceStager::to_device(const at::Tensor& host) {
  if (host.device() == device_) return host;
  if (!host.device().is_cpu())
    throw InputError("DeviceStager: expected a CPU tensor, got one on " + host.device().str());
  if (!async()) {
    ++copies_;
    return host.to(device_);
  }
  const at::Tensor c = host.contiguous();
  return to_device(c.data_ptr(), c.sizes(), c.scalar_type());
}

at::Tensor DeviceStager::to_device(const void* data, at::IntArrayRef sizes, at::ScalarType type) {
  ++copies_;
  if (!async()) {
    // The caller's memory may be reused as soon as we return: always copy.
    at::Tensor view =
        at::from_blob(const_cast<void*>(data), sizes, at::TensorOptions().dtype(type));
    return device_.is_cpu() ? view.clone() : view.to(device_);
  }
#ifdef OMNI_CUDA
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const int64_t bytes = numel * static_cast<int64_t>(c10::elementSize(type));

  c10::cuda::CUDAGuard device_guard(device_);
  Impl::Slot& slot = impl_->slots[impl_->next];
  impl_->next = (impl_->next + 1) % impl_->slots.size();
  // The previous copy out of this buffer must be done before the CPU overwrites it.
  if (slot.in_flight) slot.copied.synchronize();
  if (!slot.pinned.defined() || slot.pinned.numel() < bytes) {
    slot.pinned = at::empty({std::max<int64_t>(bytes, 1)},
                            at::TensorOptions().dtype(at::kByte).pinned_memory(true));
    ++pinned_allocations_;
  }
  if (bytes > 0) std::memcpy(slot.pinned.data_ptr(), data, static_cast<size_t>(bytes));
  const at::Tensor src = slot.pinned.narrow(0, 0, bytes).view(type).view(sizes);

  const c10::cuda::CUDAStream consumer = c10::cuda::getCurrentCUDAStream(device_.index());
  at::Tensor dst;
  {
    // Allocated on the side stream, so the caching allocator hands out memory that is free
    // from that stream's point of view; the copy never waits for the consumer's kernels.
    c10::cuda::CUDAStreamGuard stream_guard(*impl_->side);
    dst = at::empty(sizes, at::TensorOptions().dtype(type).device(device_));
    dst.copy_(src, /*non_blocking=*/true);
    slot.copied.record(*impl_->side);
  }
  slot.in_flight = true;
  // Kernels queued on the consumer stream after this point see the copied data...
  slot.copied.block(consumer);
  // ...and the memory is not recycled until they are done with it.
  dst.record_stream(consumer);
  return dst;
#else
  return {};
#endif
}

}  // namespace omni
