// Zero-copy Frame -> tensor views: same memory, explicit strides, payload kept alive.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <memory>

#include "core/error.h"
#include "core/packet.h"
#include "modalities/image/frame_tensor.h"

namespace omni {
namespace {

TEST(FrameTensor, ViewSharesPixelsAndKeepsFrameAlive) {
  cv::Mat big(20, 30, CV_8UC3);
  for (int y = 0; y < big.rows; ++y)
    for (int x = 0; x < big.cols; ++x) big.at<cv::Vec3b>(y, x) = cv::Vec3b(y, x, (x + y) & 255);
  Frame f;
  f.rgb = big(cv::Rect(3, 2, 11, 9));  // a ROI: rows padded to the parent's step
  f.pts_us = 42;
  Packet p = Packet::make<Frame>(Timestamp(42), f);
  f = Frame{};
  big.release();  // the packet's Frame now holds the only reference to the pixels
  std::weak_ptr<const Frame> watch = p.share<Frame>();

  at::Tensor t = frame_to_tensor(p);
  const Frame& held = p.get<Frame>();
  EXPECT_EQ(t.data_ptr(), static_cast<const void*>(held.rgb.data));
  EXPECT_EQ(t.sizes().vec(), (std::vector<int64_t>{9, 11, 3}));
  EXPECT_EQ(t.strides().vec(), (std::vector<int64_t>{30 * 3, 3, 1}));
  EXPECT_EQ(t.scalar_type(), at::kByte);

  p = Packet();  // drop the packet: the tensor alone keeps the frame alive
  ASSERT_FALSE(watch.expired());
  EXPECT_EQ(t[4][5][0].item<int>(), 2 + 4);
  EXPECT_EQ(t[4][5][1].item<int>(), 3 + 5);
  at::Tensor alias = t.slice(0, 1, 3);  // views share the storage, and so the keeper
  t = at::Tensor();
  EXPECT_FALSE(watch.expired());
  alias = at::Tensor();
  EXPECT_TRUE(watch.expired());
}

TEST(FrameTensor, RejectsWrongPayloads) {
  EXPECT_THROW(frame_to_tensor(make_packet<int64_t>(1, Timestamp(0))), TypeError);
  Frame gray;
  gray.rgb = cv::Mat(4, 4, CV_8UC1);
  EXPECT_THROW(frame_to_tensor(make_packet<Frame>(gray, Timestamp(0))), InputError);
}

}  // namespace
}  // namespace omni
