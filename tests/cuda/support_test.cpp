// Tests of the libtorch/CUDA shim (torch_compat) and DeviceStager. The CPU half runs everywhere;
// the CUDA half needs a GPU and skips without one (it also checks the stream synchronisation).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/version.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/common/device_stager.h"
#include "modalities/common/torch_compat.h"

#ifdef OMNI_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace omni {
namespace {

#define OMNI_REQUIRE_GPU()                                             \
  do {                                                                 \
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device available"; \
  } while (0)

TEST(TorchCompat, ReportsTheLibtorchWeCompiledAgainst) {
  EXPECT_EQ(libtorch_version(), std::to_string(TORCH_VERSION_MAJOR) + "." +
                                    std::to_string(TORCH_VERSION_MINOR) + "." +
                                    std::to_string(TORCH_VERSION_PATCH));
#ifdef OMNI_CUDA
  EXPECT_TRUE(built_with_cuda());
  EXPECT_GE(TORCH_VERSION_MAJOR, 2);
#else
  EXPECT_FALSE(built_with_cuda());
#endif
}

TEST(TorchCompat, ParsesCpuDevice) {
  EXPECT_EQ(parse_device("cpu", "test"), at::Device(at::kCPU));
  EXPECT_EQ(parse_device("CPU", "test"), at::Device(at::kCPU));
}

TEST(TorchCompat, RejectsUnknownDevicesWithContext) {
  try {
    parse_device("tpu", "node 'enc' param 'device'");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("node 'enc' param 'device'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("tpu"), std::string::npos) << msg;
  }
  EXPECT_THROW(parse_device("cuda:x", "t"), ConfigError);
  EXPECT_THROW(parse_device("", "t"), ConfigError);
}

TEST(TorchCompat, CudaWithoutGpuIsAClearConfigError) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is present";
  EXPECT_EQ(cuda_device_count(), 0);
  try {
    parse_device("cuda", "node 'fuse' param 'device'");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_device("gpu:0", "t"), ConfigError);
}

TEST(TorchCompat, ParsesDtypes) {
  const at::Device cpu(at::kCPU);
  EXPECT_EQ(parse_dtype("fp32", cpu, "t"), at::kFloat);
  EXPECT_EQ(parse_dtype("Float32", cpu, "t"), at::kFloat);
  EXPECT_THROW(parse_dtype("int8", cpu, "t"), ConfigError);
  // Half precision is a GPU-only mode.
  EXPECT_THROW(parse_dtype("bf16", cpu, "t"), ConfigError);
  EXPECT_THROW(parse_dtype("fp16", cpu, "t"), ConfigError);
  const at::Device gpu(at::kCUDA, 0);
  EXPECT_EQ(parse_dtype("bf16", gpu, "t"), at::kBFloat16);
  EXPECT_EQ(parse_dtype("bfloat16", gpu, "t"), at::kBFloat16);
  EXPECT_EQ(parse_dtype("half", gpu, "t"), at::kHalf);
  EXPECT_EQ(dtype_name(at::kBFloat16), "bf16");
  EXPECT_EQ(dtype_name(at::kHalf), "fp16");
  EXPECT_EQ(dtype_name(at::kFloat), "fp32");
}

TEST(TorchCompat, SynchronizeOnCpuIsANoOp) { device_synchronize(at::Device(at::kCPU)); }

TEST(DeviceStagerCpu, TensorStaysWhereItIs) {
  DeviceStager stager(at::Device(at::kCPU));
  EXPECT_FALSE(stager.async());
  const at::Tensor t = at::arange(12, at::kFloat).view({3, 4});
  const at::Tensor out = stager.to_device(t);
  EXPECT_TRUE(out.is_same(t));
  EXPECT_EQ(stager.pinned_allocations(), 0);
}

TEST(DeviceStagerCpu, RawMemoryIsCopiedNotAliased) {
  DeviceStager stager(at::Device(at::kCPU));
  std::vector<uint8_t> pixels(2 * 3 * 3);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  const at::Tensor out = stager.to_device(pixels.data(), {2, 3, 3}, at::kByte);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 3}));
  ASSERT_EQ(out.scalar_type(), at::kByte);
  std::vector<uint8_t> expected = pixels;
  pixels.assign(pixels.size(), 0);  // the caller reuses its buffer
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(out.data_ptr<uint8_t>()[i], expected[i]) << i;
  EXPECT_EQ(stager.copies(), 1);
}

TEST(DeviceStagerCpu, RejectsBadSlotCount) {
  EXPECT_THROW(DeviceStager(at::Device(at::kCPU), 0), ConfigError);
}

// --- GPU -------------------------------------------------------------------------------------

TEST(DeviceStagerCuda, ManyCopiesThroughReusedBuffersKeepEveryResult) {
  OMNI_REQUIRE_GPU();
  DeviceStager stager(parse_device("cuda", "test"), /*slots=*/2);
  EXPECT_TRUE(stager.async() || !built_with_cuda());
  std::vector<at::Tensor> hosts, devs;
  at::manual_seed(7);
  for (int i = 0; i < 64; ++i) {
    // Sizes vary (and grow) so buffers are both reused and reallocated.
    const int64_t n = 1000 + 977 * (i % 9);
    at::Tensor h = at::rand({n}, at::kFloat);
    devs.push_back(stager.to_device(h));
    // Overwrite the source at once: the stager must have taken its own copy.
    hosts.push_back(h.clone());
    h.fill_(-1.0f);
  }
  for (size_t i = 0; i < devs.size(); ++i) {
    ASSERT_TRUE(devs[i].is_cuda());
    EXPECT_TRUE(at::equal(devs[i].cpu(), hosts[i])) << "copy " << i;
  }
  if (stager.async()) {
    EXPECT_LE(stager.pinned_allocations(), 2 * 9);
  }
}

TEST(DeviceStagerCuda, SteadySizesReuseThePinnedBuffers) {
  OMNI_REQUIRE_GPU();
  DeviceStager stager(parse_device("cuda", "test"), /*slots=*/3);
  if (!stager.async()) GTEST_SKIP() << "CPU-flavour build: synchronous copies";
  std::vector<float> frame(224 * 224 * 3);
  for (int i = 0; i < 30; ++i) {
    for (size_t k = 0; k < frame.size(); k += 97) frame[k] = static_cast<float>(i + k);
    const at::Tensor d = stager.to_device(frame.data(), {224, 224, 3}, at::kFloat);
    const at::Tensor back = d.cpu();
    for (size_t k = 0; k < frame.size(); k += 97)
      ASSERT_EQ(back.data_ptr<float>()[k], frame[k]) << "iteration " << i << " element " << k;
  }
  EXPECT_EQ(stager.pinned_allocations(), 3);
  EXPECT_EQ(stager.copies(), 30);
}

#ifdef OMNI_CUDA
// The consumer is a non-default stream kept busy by a long matmul chain queued before the copy:
// results read on that stream right after to_device() must be the copied values, never stale or
// partial data (the side-stream event must order them).
TEST(DeviceStagerCuda, ConsumerStreamWaitsForTheCopy) {
  OMNI_REQUIRE_GPU();
  const at::Device dev = parse_device("cuda", "test");
  c10::cuda::CUDAStream consumer = c10::cuda::getStreamFromPool(false, dev.index());
  c10::cuda::CUDAStreamGuard guard(consumer);
  DeviceStager stager(dev, /*slots=*/2);
  at::Tensor busy = at::randn({2048, 2048}, at::TensorOptions().device(dev));
  std::vector<at::Tensor> sums;
  std::vector<double> expected;
  for (int i = 0; i < 16; ++i) {
    for (int k = 0; k < 4; ++k) busy = at::matmul(busy, busy).div_(2048.0);  // keep it busy
    at::Tensor h = at::full({1 << 20}, static_cast<float>(i + 1), at::kFloat);
    const at::Tensor d = stager.to_device(h);
    sums.push_back(d.sum());  // queued on `consumer` right behind the matmuls
    expected.push_back(static_cast<double>(i + 1) * (1 << 20));
  }
  for (size_t i = 0; i < sums.size(); ++i)
    EXPECT_DOUBLE_EQ(sums[i].item<double>(), expected[i]) << "copy " << i;
}
#endif

}  // namespace
}  // namespace omni
