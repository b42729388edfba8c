#include "modalities/image/image_tokens.h"

#include <string>

#include "core/error.h"

namespace omni {

VisualGrid image_token_grid(int64_t height, int64_t width, int64_t patch, bool merge) {
  const int64_t unit = merge ? 2 * patch : patch;
  if (patch <= 0 || height <= 0 || width <= 0 || height % unit != 0 || width % unit != 0) {
    throw InputError("image encoder: input " + std::to_string(width) + "x" +
                     std::to_string(height) + " must have sides that are positive multiples of " +
                     std::to_string(unit) + " (patch " + std::to_string(patch) +
                     (merge ? ", 2x2 merge)" : ")"));
  }
  return VisualGrid{height / unit, width / unit};
}

}  // namespace omni
