// list_images / load_image_rgb (OpenCV imgcodecs).
#include "modalities/media/image_reader.h"

#include <fnmatch.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

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

// The picture size a file's header claims, for the formats whose header says it plainly (PNG,
// JPEG, BMP, PNM/PAM/PFM, WebP, Sun raster, Radiance HDR); nullopt when unknown. OpenCV
// allocates the whole picture from the header before decoding (its own cap is 2^30 pixels, 3 GB
// as RGB), so a 30-byte file could otherwise claim gigabytes.
std::optional<std::pair<uint64_t, uint64_t>> claimed_size(std::string_view b) {
  auto u8 = [&](size_t i) -> uint64_t { return i < b.size() ? static_cast<uint8_t>(b[i]) : 0; };
  auto be16 = [&](size_t i) { return u8(i) << 8 | u8(i + 1); };
  auto be32 = [&](size_t i) { return be16(i) << 16 | be16(i + 2); };
  auto le16 = [&](size_t i) { return u8(i) | u8(i + 1) << 8; };
  auto le32 = [&](size_t i) { return le16(i) | le16(i + 2) << 16; };
  auto starts = [&](std::string_view m) { return b.substr(0, m.size()) == m; };
  if (starts("\x89PNG\r\n\x1a\n") && b.size() >= 24) return std::pair{be32(16), be32(20)};
  if (starts("\x59\xa6\x6a\x95") && b.size() >= 12) return std::pair{be32(4), be32(8)};
  if (starts("BM") && b.size() >= 26) {
    if (le32(14) == 12) return std::pair{le16(18), le16(20)};
    const auto h = static_cast<int32_t>(static_cast<uint32_t>(le32(22)));
    return std::pair{le32(18), static_cast<uint64_t>(h < 0 ? -int64_t{h} : int64_t{h})};
  }
  if (starts("RIFF") && b.size() >= 30 && b.substr(8, 4) == "WEBP") {
    const std::string_view chunk = b.substr(12, 4);
    if (chunk == "VP8X") return std::pair{1 + (le32(24) & 0xffffff), 1 + (le32(27) & 0xffffff)};
    if (chunk == "VP8 ") return std::pair{le16(26) & 0x3fff, le16(28) & 0x3fff};
    if (chunk == "VP8L") {
      const uint64_t bits = le32(21);
      return std::pair{1 + (bits & 0x3fff), 1 + ((bits >> 14) & 0x3fff)};
    }
    return std::nullopt;
  }
  if (starts("\xff\xd8")) {
    size_t i = 2;
    while (i + 9 < b.size()) {
      if (u8(i) != 0xff) return std::nullopt;
      const uint64_t m = u8(i + 1);
      if (m == 0xff) {  // fill byte
        ++i;
        continue;
      }
      if ((m >= 0xc0 && m <= 0xcf) && m != 0xc4 && m != 0xc8 && m != 0xcc)
        return std::pair{be16(i + 7), be16(i + 5)};
      if (m == 0xda || m == 0xd9) return std::nullopt;  // scan or end before a frame header
      if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) {
        i += 2;
        continue;
      }
      i += 2 + be16(i + 2);
    }
    return std::nullopt;
  }
  // PNM (P1-P6), PAM (P7: WIDTH / HEIGHT lines), PFM (PF / Pf): ASCII numbers after the magic,
  // with # comments.
  if (b.size() >= 2 && b[0] == 'P' && std::strchr("1234567Ff", b[1]) && b[1] != '\0') {
    size_t i = 2;
    auto number = [&]() -> std::optional<uint64_t> {
      while (i < b.size()) {
        if (b[i] == '#') {
          while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
        } else if (!std::isdigit(static_cast<unsigned char>(b[i]))) {
          // OpenCV's PxM reader steps over any non-digit between numbers, not only white space
          // ("P5\n246553P4224A5..." is 246553 x 4224 to it: fuzz/regressions/image).
          ++i;
        } else {
          break;
        }
      }
      if (i >= b.size() || !std::isdigit(static_cast<unsigned char>(b[i]))) return std::nullopt;
      uint64_t v = 0;
      while (i < b.size() && std::isdigit(static_cast<unsigned char>(b[i])) && v < (1ull << 40))
        v = v * 10 + static_cast<uint64_t>(b[i++] - '0');
      // OpenCV consumes the byte that ends a number, whatever it is: "36556#24615\n" is 36556
      // then 24615 to it, not a comment (fuzz/regressions/image/pgm-hash-after-number).
      if (i < b.size()) ++i;
      return v;
    };
    if (b[1] == '7') {
      auto field = [&](std::string_view key) -> std::optional<uint64_t> {
        const size_t at = b.find(key);
        if (at == std::string_view::npos) return std::nullopt;
        i = at + key.size();
        return number();
      };
      auto w = field("\nWIDTH"), h = field("\nHEIGHT");
      if (w && h) return std::pair{*w, *h};
      return std::nullopt;
    }
    auto w = number();
    auto h = w ? number() : std::nullopt;
    if (w && h) return std::pair{*w, *h};
    return std::nullopt;
  }
  // Radiance HDR: header lines, a blank line, then "-Y <rows> +X <cols>" (or another order).
  if (starts("#?")) {
    const size_t blank = b.find("\n\n");
    if (blank == std::string_view::npos) return std::nullopt;
    uint64_t n[2] = {0, 0};
    int k = 0;
    for (size_t i = blank + 2; i < b.size() && b[i] != '\n' && k < 2; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(b[i]))) continue;
      while (i < b.size() && std::isdigit(static_cast<unsigned char>(b[i])) && n[k] < (1ull << 40))
        n[k] = n[k] * 10 + static_cast<uint64_t>(b[i++] - '0');
      ++k;
    }
    if (k == 2) return std::pair{n[1], n[0]};
  }
  return std::nullopt;
}

// The formats ImageSource reads, by their magic bytes (the extensions of has_image_extension):
// JPEG, PNG, BMP, WebP, TIFF (and BigTIFF), PNM/PAM/PFM, JPEG 2000 (file and codestream), Sun
// raster, Radiance HDR, OpenEXR, AVIF. Anything else is refused before OpenCV sees it: its
// imdecode tries every decoder it was built with, and Debian's includes GDCM (DICOM), which
// aborts the process on some malformed inputs (fuzz/regressions/image/gdcm-*).
bool known_image_format(std::string_view b) {
  auto starts = [&](std::string_view m) { return b.substr(0, m.size()) == m; };
  using namespace std::string_view_literals;
  // OpenCV hands bytes to the first decoder whose signature matches, and GDCM's is "DICM" at
  // offset 128: behind a magic of ours that OpenCV's own decoder does not accept (a "#?" that is
  // not "#?RADIANCE", ...) such a file still reached GDCM (fuzz/regressions/image/gdcm-*).
  if (b.size() >= 132 && b.substr(128, 4) == "DICM"sv) return false;
  if (starts("\xff\xd8\xff"sv) || starts("\x89PNG\r\n\x1a\n"sv) || starts("BM"sv)) return true;
  if (starts("RIFF"sv) && b.size() >= 12 && b.substr(8, 4) == "WEBP"sv) return true;
  if (starts("II*\0"sv) || starts("MM\0*"sv) || starts("II+\0"sv) || starts("MM\0+"sv)) return true;
  if (b.size() >= 2 && b[0] == 'P' && std::strchr("1234567Ff", b[1]) && b[1] != '\0') return true;
  if (starts("\0\0\0\x0cjP  \r\n\x87\n"sv) || starts("\xff\x4f\xff\x51"sv)) return true;
  if (starts("\x59\xa6\x6a\x95"sv) || starts("#?"sv) || starts("\x76\x2f\x31\x01"sv)) return true;
  return b.size() >= 12 && b.substr(4, 4) == "ftyp"sv &&
         (b.substr(8, 4) == "avif"sv || b.substr(8, 4) == "avis"sv);
}

void check_image_header(std::string_view head, const std::string& name) {
  if (!known_image_format(head)) {
    throw InputError("ImageSource: '" + name +
                     "' is not an image in a format omnipipe reads (JPEG, PNG, BMP, WebP, TIFF, "
                     "PNM, JPEG 2000, Sun raster, Radiance HDR, OpenEXR, AVIF)");
  }
  // (compared by division: the product of two claimed sides may not fit in 64 bits)
  if (auto wh = claimed_size(head); wh && wh->first > 0 && wh->second > kMaxImagePixels / wh->first)
    throw InputError("ImageSource: '" + name + "' claims " + std::to_string(wh->first) + "x" +
                     std::to_string(wh->second) + " pixels, more than the limit of " +
                     std::to_string(kMaxImagePixels));
}

// What OpenCV decoded (3-channel BGR, IMREAD_COLOR) as RGB; empty means it could not decode.
cv::Mat rgb_of(const cv::Mat& bgr, const std::string& name) {
  if (bgr.empty()) {
    throw InputError("ImageSource: cannot decode '" + name +
                     "' (not an image OpenCV can read, or damaged)");
  }
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
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
  {
    // The header is enough to refuse a picture bigger than the cap (JPEG's frame header may
    // follow large APPn segments: read up to 1 MiB).
    std::ifstream f(path, std::ios::binary);
    std::string head(1 << 20, '\0');
    f.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(std::max<std::streamsize>(f.gcount(), 0)));
    check_image_header(head, path);
  }
  cv::Mat bgr;
  try {
    // IMREAD_COLOR: 3-channel 8-bit BGR, EXIF orientation applied, alpha dropped, gray expanded.
    bgr = cv::imread(path, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw InputError("ImageSource: cannot decode '" + path + "': " + e.what());
  }
  return rgb_of(bgr, path);
}

cv::Mat decode_image_rgb(const std::string& bytes, const std::string& name) {
  check_image_header(bytes, name);
  cv::Mat bgr;
  try {
    const cv::Mat buf(1, static_cast<int>(std::min<size_t>(bytes.size(), INT32_MAX)), CV_8U,
                      const_cast<char*>(bytes.data()));
    if (!bytes.empty()) bgr = cv::imdecode(buf, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw InputError("ImageSource: cannot decode '" + name + "': " + e.what());
  }
  return rgb_of(bgr, name);
}

}  // namespace omni
