#include "modalities/image/resize_rules.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace omni {

void check_resized_pixels(const char* who, int64_t height, int64_t width) {
  // Sides up to 2^31 each: the product cannot overflow.
  if (height * width > kMaxResizedPixels) {
    throw InputError(std::string(who) + ": the resized picture would be " + std::to_string(width) +
                     "x" + std::to_string(height) + ", over the " +
                     std::to_string(kMaxResizedPixels) +
                     " pixels this reader allows (check min_pixels / the size option)");
  }
}

std::pair<int, int> smart_resize_sides(int height, int width, int factor, int64_t min_pixels,
                                       int64_t max_pixels) {
  const double f = factor;
  // std::nearbyint rounds half to even in the default rounding mode, as Python's round() does.
  int64_t h = static_cast<int64_t>(std::nearbyint(height / f)) * factor;
  int64_t w = static_cast<int64_t>(std::nearbyint(width / f)) * factor;
  if (h * w > max_pixels) {
    const double beta = std::sqrt(static_cast<double>(height) * width / max_pixels);
    h = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(height / beta / f)) * factor);
    w = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(width / beta / f)) * factor);
  } else if (h * w < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / (double(height) * width));
    h = static_cast<int64_t>(std::ceil(height * beta / f)) * factor;
    w = static_cast<int64_t>(std::ceil(width * beta / f)) * factor;
  }
  check_resized_pixels("smart_resize", h, w);
  return {static_cast<int>(h), static_cast<int>(w)};
}

std::pair<int, int> smart_resize(int height, int width, int factor, int64_t min_pixels,
                                 int64_t max_pixels) {
  if (factor <= 0 || height < factor || width < factor) {
    throw InputError("smart_resize: image " + std::to_string(width) + "x" + std::to_string(height) +
                     " is smaller than the factor " + std::to_string(factor) + " on a side");
  }
  if (static_cast<double>(std::max(height, width)) / std::min(height, width) > 200) {
    throw InputError("smart_resize: aspect ratio of " + std::to_string(width) + "x" +
                     std::to_string(height) + " exceeds 200");
  }
  return smart_resize_sides(height, width, factor, min_pixels, max_pixels);
}

}  // namespace omni
