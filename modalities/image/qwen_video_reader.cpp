// qwen_video_inputs(path): MediaReader decoding for the Qwen video processor (OMNI_WITH_MEDIA).
#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "modalities/image/qwen_vision.h"
#include "modalities/media/media_reader.h"

namespace omni {

QwenVideoInputs qwen_video_inputs(const std::string& path, const QwenVideoOptions& o) {
  MediaReaderOptions ro;
  ro.path = path;
  ro.audio = false;
  ro.video = true;
  // Pass 1: the decoded stream's frame count and rate (torchcodec's exact scan counts every frame
  // and takes the average rate from the content).
  int64_t count = 0, first_us = 0, last_us = 0;
  {
    MediaReader reader(ro);
    if (!reader.has_video()) throw InputError("qwen video: " + path + " has no video stream");
    MediaReader::Item item;
    while (reader.next(item)) {
      if (item.kind != MediaReader::Item::Kind::kVideo) continue;
      if (count == 0) first_us = item.frame.pts_us;
      last_us = item.frame.pts_us;
      ++count;
    }
  }
  if (count == 0) throw InputError("qwen video: " + path + " has no decodable video frames");
  double fps = 0;
  if (count >= 2 && last_us > first_us) {
    fps = static_cast<double>(count - 1) * 1e6 / static_cast<double>(last_us - first_us);
  }
  const QwenVideoPlan plan = qwen_video_plan(count, fps, o);
  // Pass 2: keep the chosen frames (indices may repeat when nframes > distinct frames).
  std::vector<Frame> kept;
  kept.reserve(plan.indices.size());
  {
    MediaReader reader(ro);
    MediaReader::Item item;
    int64_t i = 0;
    size_t next = 0;
    while (next < plan.indices.size() && reader.next(item)) {
      if (item.kind != MediaReader::Item::Kind::kVideo) continue;
      while (next < plan.indices.size() && plan.indices[next] == i) {
        kept.push_back(item.frame);
        ++next;
      }
      ++i;
    }
  }
  if (kept.size() != plan.indices.size()) {
    throw InputError("qwen video: " + path + " yielded fewer frames on the second pass (" +
                     std::to_string(kept.size()) + " of " + std::to_string(plan.indices.size()) +
                     ")");
  }
  std::vector<RgbView> views;
  for (const Frame& f : kept) {
    views.push_back(
        {f.rgb.ptr<uint8_t>(0), f.rgb.cols, f.rgb.rows, static_cast<int64_t>(f.rgb.step[0])});
  }
  return qwen_video_inputs_from_frames(views, plan, o);
}

}  // namespace omni
