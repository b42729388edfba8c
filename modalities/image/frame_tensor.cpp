#include "modalities/image/frame_tensor.h"

#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "core/error.h"

namespace omni {
namespace {

void check_rgb8(const Frame& f) {
  if (f.rgb.empty() || f.rgb.type() != CV_8UC3 || f.rgb.dims != 2) {
    throw InputError("frame " + std::to_string(f.index) + " at " + std::to_string(f.pts_us) +
                     "us: expected a non-empty CV_8UC3 RGB image, got type " +
                     std::to_string(f.rgb.type()) + " size " + std::to_string(f.rgb.cols) + "x" +
                     std::to_string(f.rgb.rows));
  }
}

}  // namespace

at::Tensor frame_to_tensor(const Packet& frame_packet) {
  std::shared_ptr<const Frame> frame = frame_packet.share<Frame>();
  check_rgb8(*frame);
  const cv::Mat& m = frame->rgb;
  // from_blob wants a mutable pointer; the view is documented read-only.
  void* data = const_cast<uint8_t*>(m.ptr<uint8_t>());
  return at::from_blob(
      data, {m.rows, m.cols, 3}, {static_cast<int64_t>(m.step[0]), 3, 1},
      [keep = std::move(frame)](void*) mutable { keep.reset(); }, at::TensorOptions(at::kByte));
}

at::Tensor preprocess_frame(const Frame& frame, const PreprocessOptions& options) {
  check_rgb8(frame);
  try {
    return preprocess_rgb(frame.rgb.ptr<uint8_t>(), frame.rgb.cols, frame.rgb.rows,
                          static_cast<int64_t>(frame.rgb.step[0]), options);
  } catch (const Error& e) {
    throw InputError("frame " + std::to_string(frame.index) + " at " +
                     std::to_string(frame.pts_us) + "us: " + e.what());
  }
}

}  // namespace omni
