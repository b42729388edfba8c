// list_images / load_image_rgb (OpenCV imgcodecs).
#include "modalities/media/image_reader.h"

#include <fnmatch.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <set>

#include "core/error.h"

namespace omni {

namespace fs = std::filesystem;

namespace {

bool has_image_extension(const fs::path& p) {
  static const std::set<std::string> kExt = {
      ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
      ".pbm", ".pnm",  ".pxm", ".jp2", ".sr",  ".ras", ".hdr", ".pic",  ".exr",  ".avif"};
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return kExt.count(e) != 0;
}

}  // namespace

std::vector<std::string> list_images(const std::vector<std::string>& entries,
                                     const std::string& pattern) {
  std::vector<std::string> out;
  for (const std::string& e : entries) {
    std::error_code ec;
    fs::file_status st = fs::status(e, ec);
    if (ec || !fs::exists(st)) throw InputError("ImageSource: '" + e + "' does not exist");
    if (!fs::is_directory(st)) {
      out.push_back(e);
      continue;
    }
    std::vector<std::string> found;
    for (const fs::directory_entry& d : fs::directory_iterator(e, ec)) {
      if (!d.is_regular_file()) continue;
      std::string name = d.path().filename().string();
      bool match = pattern.empty() ? has_image_extension(d.path())
                                   : fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
      if (match) found.push_back(d.path().string());
    }
    if (ec) throw InputError("ImageSource: cannot list folder '" + e + "': " + ec.message());
    if (found.empty()) {
      throw InputError("ImageSource: folder '" + e + "' has no files matching '" +
                       (pattern.empty() ? std::string("<image extensions>") : pattern) + "'");
    }
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

cv::Mat load_image_rgb(const std::string& path) {
  cv::Mat bgr;
  try {
    // IMREAD_COLOR: 3-channel 8-bit BGR, EXIF orientation applied, alpha dropped, gray expanded.
    bgr = cv::imread(path, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw InputError("ImageSource: cannot decode '" + path + "': " + e.what());
  }
  if (bgr.empty()) {
    throw InputError("ImageSource: cannot decode '" + path +
                     "' (not an image OpenCV can read, or damaged)");
  }
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

cv::Mat decode_image_rgb(const std::string& bytes, const std::string& name) {
  cv::Mat bgr;
  try {
    const cv::Mat buf(1, static_cast<int>(std::min<size_t>(bytes.size(), INT32_MAX)), CV_8U,
                      const_cast<char*>(bytes.data()));
    if (!bytes.empty()) bgr = cv::imdecode(buf, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw InputError("ImageSource: cannot decode '" + name + "': " + e.what());
  }
  if (bgr.empty()) {
    throw InputError("ImageSource: cannot decode '" + name +
                     "' (not an image OpenCV can read, or damaged)");
  }
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

}  // namespace omni
