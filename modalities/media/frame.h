// Frame: one decoded RGB 8-bit picture with its media timestamp.
#pragma once

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/type_name.h"

namespace omni {

struct Frame {
  // CV_8UC3, RGB order, upright (rotation metadata already applied). Rows may be padded
  // (rgb.step[0] >= 3 * cols; MediaReader aligns them to 64 bytes): index rows through step.
  cv::Mat rgb;
  int64_t pts_us = 0;  // presentation time in microseconds (equals the packet timestamp)
  int64_t index = 0;   // index among emitted frames of its stream
};

}  // namespace omni

OMNI_TYPE_NAME(omni::Frame, "Frame");

template <>
struct omni::PayloadJson<omni::Frame> {
  static void encode(const omni::Frame& f, nlohmann::json& j) {
    j["width"] = f.rgb.cols;
    j["height"] = f.rgb.rows;
    j["pts_us"] = f.pts_us;
    j["index"] = f.index;
  }
};
