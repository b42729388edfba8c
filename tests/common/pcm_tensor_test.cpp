// Zero-copy AudioChunk -> tensor views.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <memory>

#include "core/error.h"
#include "core/packet.h"
#include "modalities/common/audio_chunk.h"
#include "modalities/common/pcm_tensor.h"

namespace omni {
namespace {

TEST(PcmTensor, ViewSharesSamplesAndKeepsChunkAlive) {
  AudioChunk c;
  c.channels = 2;
  c.samples = {0.f, 1.f, 2.f, 3.f, 4.f, 5.f};
  Packet p = make_packet<AudioChunk>(std::move(c), Timestamp(10));
  std::weak_ptr<const AudioChunk> watch = p.share<AudioChunk>();
  at::Tensor t = pcm_to_tensor(p);
  EXPECT_EQ(t.data_ptr(), static_cast<const void*>(p.get<AudioChunk>().samples.data()));
  EXPECT_EQ(t.sizes().vec(), (std::vector<int64_t>{3, 2}));
  at::Tensor right = t.select(1, 1);  // strided channel view, still no copy
  p = Packet();
  EXPECT_FALSE(watch.expired());
  EXPECT_FLOAT_EQ(right[2].item<float>(), 5.f);
  t = at::Tensor();
  EXPECT_FALSE(watch.expired());
  right = at::Tensor();
  EXPECT_TRUE(watch.expired());
}

TEST(PcmTensor, EmptyAndInvalidChunks) {
  AudioChunk empty;
  EXPECT_EQ(pcm_to_tensor(make_packet<AudioChunk>(empty, Timestamp(0))).size(0), 0);
  AudioChunk bad;
  bad.channels = 0;
  bad.samples = {1.f};
  EXPECT_THROW(pcm_to_tensor(make_packet<AudioChunk>(bad, Timestamp(0))), InputError);
  EXPECT_THROW(pcm_to_tensor(make_packet<int64_t>(3, Timestamp(0))), TypeError);
}

}  // namespace
}  // namespace omni
