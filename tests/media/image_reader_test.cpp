// list_images / load_image_rgb on images written by the test (incl. an EXIF-rotated JPEG).
#include "modalities/media/image_reader.h"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

class ImageFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(OMNI_BINARY_DIR) / "test_tmp" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// A 80x48 BGR picture: red top-left quarter on blue.
cv::Mat quarter_picture() {
  cv::Mat m(48, 80, CV_8UC3, cv::Scalar(255, 0, 0));
  m(cv::Rect(0, 0, 40, 24)).setTo(cv::Scalar(0, 0, 255));
  return m;
}

// JPEG bytes with an EXIF APP1 segment holding only Orientation = `orientation`.
std::vector<uchar> jpeg_with_orientation(const cv::Mat& bgr, int orientation) {
  std::vector<uchar> jpg;
  cv::imencode(".jpg", bgr, jpg, {cv::IMWRITE_JPEG_QUALITY, 95});
  const uchar exif[] = {
      0xFF, 0xE1, 0x00, 34,               // APP1, length 34 (incl. these 2 bytes)
      'E',  'x',  'i',  'f', 0, 0,        // Exif header
      'M',  'M',  0,    42,  0, 0, 0, 8,  // big-endian TIFF header, IFD0 at 8
      0,    1,                            // one entry
      0x01, 0x12, 0,    3,   0, 0, 0, 1, 0, uchar(orientation), 0, 0,  // Orientation SHORT
      0,    0,    0,    0,                                             // no next IFD
  };
  jpg.insert(jpg.begin() + 2, std::begin(exif), std::end(exif));  // right after SOI
  return jpg;
}

TEST_F(ImageFiles, FormatsComeOutRgb8) {
  cv::Mat bgr = quarter_picture();
  cv::imwrite(path("color.png"), bgr);
  cv::Mat gray;
  cv::cvtColor(bgr, gray, cv::COLOR_BGR2GRAY);
  cv::imwrite(path("gray.png"), gray);
  cv::Mat bgra;
  cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
  cv::imwrite(path("rgba.png"), bgra);
  cv::Mat deep;
  bgr.convertTo(deep, CV_16UC3, 257.0);  // 255 -> 65535
  cv::imwrite(path("deep16.png"), deep);

  for (const char* name : {"color.png", "rgba.png", "deep16.png"}) {
    cv::Mat rgb = load_image_rgb(path(name));
    ASSERT_EQ(rgb.type(), CV_8UC3) << name;
    ASSERT_EQ(rgb.size(), cv::Size(80, 48)) << name;
    EXPECT_EQ(rgb.at<cv::Vec3b>(5, 5), cv::Vec3b(255, 0, 0)) << name;    // red, in RGB order
    EXPECT_EQ(rgb.at<cv::Vec3b>(40, 70), cv::Vec3b(0, 0, 255)) << name;  // blue
  }
  cv::Mat g = load_image_rgb(path("gray.png"));
  ASSERT_EQ(g.type(), CV_8UC3);
  cv::Vec3b p = g.at<cv::Vec3b>(5, 5);
  EXPECT_EQ(p[0], p[1]);
  EXPECT_EQ(p[1], p[2]);
  EXPECT_EQ(p[0], gray.at<uchar>(5, 5));
}

TEST_F(ImageFiles, ExifOrientationIsApplied) {
  std::vector<uchar> jpg = jpeg_with_orientation(quarter_picture(), 6);  // 6: rotate 90 CW
  std::ofstream(path("exif6.jpg"), std::ios::binary)
      .write(reinterpret_cast<const char*>(jpg.data()), std::streamsize(jpg.size()));
  cv::Mat rgb = load_image_rgb(path("exif6.jpg"));
  ASSERT_EQ(rgb.size(), cv::Size(48, 80));  // portrait after rotation
  cv::Vec3b tr = rgb.at<cv::Vec3b>(5, 42), tl = rgb.at<cv::Vec3b>(5, 5);
  EXPECT_GT(tr[0], 200);  // the red quarter moved to the top-right
  EXPECT_LT(tr[2], 60);
  EXPECT_LT(tl[0], 60);  // blue where it used to be
  EXPECT_GT(tl[2], 200);
}

TEST_F(ImageFiles, DecodesFromMemoryAsFromAFile) {
  std::vector<uchar> jpg = jpeg_with_orientation(quarter_picture(), 6);
  std::ofstream(path("exif6.jpg"), std::ios::binary)
      .write(reinterpret_cast<const char*>(jpg.data()), std::streamsize(jpg.size()));
  const cv::Mat from_file = load_image_rgb(path("exif6.jpg"));
  const cv::Mat from_memory =
      decode_image_rgb(std::string(jpg.begin(), jpg.end()), "exif6 in memory");
  ASSERT_EQ(from_memory.size(), from_file.size());  // EXIF orientation applied as well
  EXPECT_EQ(cv::norm(from_memory, from_file, cv::NORM_INF), 0);
  EXPECT_THROW(decode_image_rgb("", "empty"), InputError);
  try {
    decode_image_rgb(std::string("\x89PNG\r\n\x1a\n junk"), "junk.png");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("junk.png"), std::string::npos) << e.what();
  }
}

// Found by fuzz_image: a 32-byte PGM header claiming 246555 x 3226 pixels made OpenCV allocate
// 2.4 GB. Headers claiming more than kMaxImagePixels are refused before decoding, in memory and
// from files, for each format whose header gives the size plainly.
TEST_F(ImageFiles, HeadersClaimingHugePicturesAreRefused) {
  auto be32 = [](uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16 & 0xff), char(v >> 8 & 0xff), char(v & 0xff)};
  };
  const std::vector<std::pair<std::string, std::string>> files = {
      {"fuzz.pgm", std::string("P5\n246555\n3226P53\xfb\xfb\xfb"
                               "5\n2526\x14\x14"
                               "56\x14\x14")},
      {"big.ppm", "P6 # comment\n 100000 100000\n255\n"},
      {"esc.pgm",
       "P5\n246555\x1b"
       "3226\n255\n"},                                  // any control byte separates numbers
      {"letters.pgm", "P5\n246553P4224A5\n26553\x14"},  // and so does any other non-digit
      {"hash.pgm", "P5\n36556#24615\x12\n5P\x7f%@:6552=64.//"},  // '#' right after a number
      {"big.pam", "P7\nWIDTH 70000\nHEIGHT 70000\nDEPTH 3\nMAXVAL 255\nENDHDR\n"},
      {"big.png", std::string("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16) + be32(60000) + be32(60000) +
                      std::string("\x08\x02\0\0\0", 5)},
      {"big.jpg",
       std::string("\xff\xd8\xff\xc0\x00\x11\x08\xff\xf0\xff\xf0\x03", 12) + std::string(16, '\0')},
      {"big.bmp", std::string("BM", 2) + std::string(12, '\0') + std::string("\x28\0\0\0", 4) +
                      std::string("\x60\xea\0\0\x60\xea\0\0", 8) + std::string(8, '\0')},
      {"big.hdr", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 50000 +X 50000\n"},
  };
  // Found by fuzz_image in the header reading itself: a RIFF file shorter than a WebP header.
  EXPECT_THROW(decode_image_rgb("RIFF", "short.webp"), InputError);
  // Found by fuzz_image: OpenCV passed 160 bytes starting "((" to GDCM, whose DICOM reader
  // aborted the process. Formats outside the list are refused before OpenCV sees them.
  try {
    decode_image_rgb(std::string("((") + std::string(126, '\0') + "DICM" + std::string(8, '\0'),
                     "x.dcm");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not an image in a format omnipipe reads"),
              std::string::npos)
        << e.what();
  }
  // The same behind a magic of ours that OpenCV's own decoder refuses ("#?" but not "#?RADIANCE").
  EXPECT_THROW(decode_image_rgb("#?Z4ID" + std::string(122, '\xff') + "DICM1I", "x.hdr"),
               InputError);
  for (const auto& [name, bytes] : files) {
    try {
      decode_image_rgb(bytes, name);
      ADD_FAILURE() << name << ": no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("more than the limit"), std::string::npos) << e.what();
    }
    std::ofstream(path(name), std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    EXPECT_THROW(load_image_rgb(path(name)), InputError) << name;
  }
}

TEST_F(ImageFiles, FolderListingIsSortedAndFiltered) {
  cv::Mat bgr = quarter_picture();
  for (const char* name : {"b.png", "a.jpg", "c.PNG", "10.png"}) cv::imwrite(path(name), bgr);
  std::ofstream(path("notes.txt")) << "not an image";
  std::vector<std::string> all = list_images({dir_.string()});
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(fs::path(all[0]).filename(), "10.png");
  EXPECT_EQ(fs::path(all[1]).filename(), "a.jpg");
  EXPECT_EQ(fs::path(all[2]).filename(), "b.png");
  EXPECT_EQ(fs::path(all[3]).filename(), "c.PNG");
  std::vector<std::string> png = list_images({dir_.string()}, "*.png");
  ASSERT_EQ(png.size(), 2u);
  // Files are taken in the order given, folders expand in place.
  std::vector<std::string> mixed = list_images({path("b.png"), dir_.string()}, "a.*");
  ASSERT_EQ(mixed.size(), 2u);
  EXPECT_EQ(fs::path(mixed[0]).filename(), "b.png");
  EXPECT_EQ(fs::path(mixed[1]).filename(), "a.jpg");
  EXPECT_THROW(list_images({path("missing.png")}), InputError);
  EXPECT_THROW(list_images({dir_.string()}, "*.gif"), InputError);
}

TEST_F(ImageFiles, UnreadableImageIsNamed) {
  std::ofstream(path("broken.png")) << "this is text, not a PNG";
  try {
    load_image_rgb(path("broken.png"));
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("broken.png"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace omni
