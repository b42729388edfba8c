// Image loading for ImageSource: list files (single file, list, or folder + glob, sorted) and
// decode any OpenCV-readable image into an upright RGB 8-bit cv::Mat.
#pragma once

#include <opencv2/core/mat.hpp>

#include <string>
#include <vector>

namespace omni {

// Expands `entries` (files or folders) into image files. A folder contributes its regular files
// whose name matches `pattern` (fnmatch glob; empty = any extension OpenCV can decode), sorted
// by name; a file is taken as is, in the order given. Throws InputError for a missing path or a
// folder that yields nothing.
std::vector<std::string> list_images(const std::vector<std::string>& entries,
                                     const std::string& pattern = "");

// Decodes an image as upright RGB8: EXIF orientation applied, grayscale expanded, alpha dropped,
// 16-bit scaled to 8-bit. Throws InputError naming the file when it cannot be decoded.
cv::Mat load_image_rgb(const std::string& path);
// The same for an image held in memory (`name` names it in messages).
cv::Mat decode_image_rgb(const std::string& bytes, const std::string& name);

}  // namespace omni
