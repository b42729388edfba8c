// Image loading for ImageSource: list files (single file, list, or folder + glob, sorted) and
// decode any OpenCV-readable image into an upright RGB 8-bit cv::Mat.
#pragma once

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace omni {

// Expands `entries` (files or folders) into image files. A folder contributes its regular files
// whose name matches `pattern` (fnmatch glob; empty = any extension OpenCV can decode), sorted
// by name; a file is taken as is, in the order given. Throws InputError for a missing path or a
// folder that yields nothing.
std::vector<std::string> list_images(const std::vector<std::string>& entries,
                                     const std::string& pattern = "");

// The largest picture decoded (pixels, e.g. 8192 x 8192). A PNG, JPEG, BMP, PNM/PAM/PFM, WebP,
// Sun raster or Radiance HDR file whose header claims more is an InputError before anything is
// allocated; other formats are bounded by OpenCV's own cap (OPENCV_IO_MAX_IMAGE_PIXELS, 2^30).
inline constexpr uint64_t kMaxImagePixels = uint64_t{1} << 26;

// Decodes an image as upright RGB8: EXIF orientation applied, grayscale expanded, alpha dropped,
// 16-bit scaled to 8-bit. Throws InputError naming the file when it cannot be decoded.
cv::Mat load_image_rgb(const std::string& path);
// The same for an image held in memory (`name` names it in messages).
cv::Mat decode_image_rgb(const std::string& bytes, const std::string& name);

}  // namespace omni
