// Image decoding as ImageSource does it (OpenCV imdecode, EXIF orientation, RGB). Input: the file.
#include <string>

#include "fuzz/fuzz_util.h"
#include "modalities/media/image_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  omni::fuzz::expect_clean_errors([&] {
    cv::Mat rgb = omni::decode_image_rgb(bytes, "memory");
    if (rgb.type() != CV_8UC3 || rgb.empty()) __builtin_trap();
  });
  return 0;
}
