// make_clips: writes the synthetic "shapes & voices" clips (MP4, H.264 + AAC) and a manifest with
// their ground truth, deterministic for a seed. Frames are drawn with OpenCV, the voice comes from
// the espeak-ng CLI, noise and mixing are done here, and the ffmpeg CLI encodes with fixed flags.
#include <CLI/CLI.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/shapes_voices/rng.h"
#include "models/shapes_voices/task.h"

namespace fs = std::filesystem;
using omni::demo::ClipInfo;
using omni::demo::DetRng;

namespace {

struct Options {
  std::string out;
  int count = 8;
  uint64_t seed = 1;
  int width = 160, height = 120, fps = 10;
  double seconds = 3.0;
  int sample_rate = 16000;
  bool audio = true;
  bool quiet = false;
  bool skip_existing = false;
};

// splitmix64: turns (seed, index) into an independent per-clip seed, so clip i is the same
// whatever --count is.
uint64_t mix_seed(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Reads a 16-bit PCM mono WAV (what espeak-ng writes) into floats in [-1, 1].
std::vector<float> read_wav_s16(const std::string& path, int& rate) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw omni::InputError("cannot read espeak-ng output '" + path + "'");
  std::vector<char> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto u32 = [&](size_t o) {
    return uint32_t(uint8_t(buf[o])) | uint32_t(uint8_t(buf[o + 1])) << 8 |
           uint32_t(uint8_t(buf[o + 2])) << 16 | uint32_t(uint8_t(buf[o + 3])) << 24;
  };
  auto u16 = [&](size_t o) { return uint16_t(uint8_t(buf[o]) | uint8_t(buf[o + 1]) << 8); };
  if (buf.size() < 12 || std::string(buf.data(), 4) != "RIFF" ||
      std::string(buf.data() + 8, 4) != "WAVE")
    throw omni::InputError("'" + path + "' is not a WAV file");
  size_t pos = 12;
  int channels = 0, bits = 0;
  rate = 0;
  while (pos + 8 <= buf.size()) {
    const std::string id(buf.data() + pos, 4);
    size_t size = u32(pos + 4);
    const size_t body = pos + 8;
    if (id == "fmt " && body + 16 <= buf.size()) {
      channels = u16(body + 2);
      rate = int(u32(body + 4));
      bits = u16(body + 14);
    } else if (id == "data") {
      if (channels != 1 || bits != 16)
        throw omni::InputError("'" + path + "': expected 16-bit mono PCM");
      size = std::min(size, buf.size() - body);  // streamed WAVs may carry a bogus size
      std::vector<float> out(size / 2);
      for (size_t i = 0; i < out.size(); ++i) out[i] = int16_t(u16(body + 2 * i)) / 32768.0f;
      return out;
    }
    pos = body + size + (size & 1);
  }
  throw omni::InputError("'" + path + "': no data chunk");
}

// Band-limited resampling (Hann-windowed sinc, cutoff 0.9 x the lower Nyquist).
std::vector<float> resample(const std::vector<float>& x, int from, int to) {
  if (from <= 0 || to <= 0)
    throw omni::InputError("resample: bad sample rates " + std::to_string(from) + " -> " +
                           std::to_string(to));
  if (from == to) return x;
  const double ratio = double(from) / to;
  const double fc = 0.45 * std::min(from, to) / double(from);  // cycles per input sample
  const int half = 24;
  std::vector<float> y(size_t(std::floor(x.size() / ratio)));
  for (size_t n = 0; n < y.size(); ++n) {
    const double t = n * ratio;
    const long k0 = long(std::floor(t)) - half + 1, k1 = long(std::floor(t)) + half;
    double acc = 0;
    for (long k = std::max(0L, k0); k <= std::min(long(x.size()) - 1, k1); ++k) {
      const double u = t - k;
      const double a = 2 * fc * u;
      const double sinc = a == 0 ? 1.0 : std::sin(M_PI * a) / (M_PI * a);
      const double w = 0.5 + 0.5 * std::cos(M_PI * u / half);
      acc += x[k] * 2 * fc * sinc * w;
    }
    y[n] = float(acc);
  }
  return y;
}

void write_wav_s16(const std::string& path, const std::vector<float>& x, int rate) {
  std::ofstream out(path, std::ios::binary);
  auto w32 = [&](uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  auto w16 = [&](uint16_t v) { out.write(reinterpret_cast<const char*>(&v), 2); };
  out.write("RIFF", 4);
  w32(uint32_t(36 + 2 * x.size()));
  out.write("WAVEfmt ", 8);
  w32(16);
  w16(1);
  w16(1);
  w32(uint32_t(rate));
  w32(uint32_t(rate * 2));
  w16(2);
  w16(16);
  out.write("data", 4);
  w32(uint32_t(2 * x.size()));
  for (float v : x) w16(uint16_t(int16_t(std::lround(std::clamp(v, -1.0f, 1.0f) * 32767.0f))));
  if (!out) throw omni::InputError("cannot write '" + path + "'");
}

// Draws the shape with its bounding box centred at (cx, cy); sub-pixel via the shift argument.
void draw_shape(cv::Mat& img, int shape, double cx, double cy, double s, const cv::Scalar& color) {
  constexpr int kShift = 4;
  constexpr double kScale = 1 << kShift;
  auto P = [&](double x, double y) {
    return cv::Point(int(std::lround(x * kScale)), int(std::lround(y * kScale)));
  };
  if (shape == 0) {
    cv::circle(img, P(cx, cy), int(std::lround(s / 2 * kScale)), color, cv::FILLED, cv::LINE_AA,
               kShift);
  } else if (shape == 1) {
    cv::rectangle(img, P(cx - s / 2, cy - s / 2), P(cx + s / 2, cy + s / 2), color, cv::FILLED,
                  cv::LINE_AA, kShift);
  } else {
    const double hy = s * std::sqrt(3.0) / 4;  // half of the equilateral height
    std::vector<cv::Point> pts = {P(cx, cy - hy), P(cx + s / 2, cy + hy), P(cx - s / 2, cy + hy)};
    cv::fillPoly(img, std::vector<std::vector<cv::Point>>{pts}, color, cv::LINE_AA, kShift);
  }
}

ClipInfo make_clip(const Options& o, int index, const fs::path& dir) {
  DetRng rng(mix_seed(o.seed, uint64_t(index)));
  ClipInfo c;
  c.index = index;
  char name[64];
  std::snprintf(name, sizeof name, "clip_%05d.mp4", index);
  c.file = name;
  // Every draw happens in a fixed order so the clip depends only on (seed, index).
  c.shape = int(rng.below(3));
  c.color = int(rng.below(4));
  const bool match = index % 2 == 0;  // exactly balanced yes/no
  const int other = int(rng.below(3));
  c.spoken = match ? c.color : (c.color + 1 + other) % 4;
  for (int ch = 0; ch < 3; ++ch)
    c.rgb[ch] = std::clamp(omni::demo::kColorRgb[c.color][ch] + int(rng.range(-20, 20)), 0, 255);
  c.background = int(rng.range(20, 60));
  c.noise_sigma = rng.uniform(0.0, 8.0);
  const int short_side = std::min(o.width, o.height);
  c.size_px = rng.uniform(0.25, 0.45) * short_side;
  const double hx = c.size_px / 2;
  const double hy = c.shape == 2 ? c.size_px * std::sqrt(3.0) / 4 : c.size_px / 2;
  // Both ends of the straight path keep the whole shape (plus its anti-aliased edge) inside.
  c.x0 = rng.uniform(hx + 1, o.width - hx - 1);
  c.y0 = rng.uniform(hy + 1, o.height - hy - 1);
  c.x1 = rng.uniform(hx + 1, o.width - hx - 1);
  c.y1 = rng.uniform(hy + 1, o.height - hy - 1);
  c.words_per_minute = int(rng.range(150, 190));
  c.pitch = int(rng.range(30, 70));
  c.speech_start_s = rng.uniform(0.2, 1.5);
  const uint64_t noise_seed = rng.next();

  const fs::path mp4 = dir / c.file;
  const fs::path wav = dir / (std::string(name) + ".tmp.wav");
  const fs::path speech = dir / (std::string(name) + ".speech.wav");
  // Every random draw is made above, so an existing clip's ground truth is known without
  // encoding it again (used to resume an interrupted run).
  if (o.skip_existing && fs::exists(mp4) && fs::file_size(mp4) > 0) return c;
  const int total = int(std::lround(o.seconds * o.sample_rate));
  if (o.audio) {
    const std::string cmd = "espeak-ng -v en -s " + std::to_string(c.words_per_minute) + " -p " +
                            std::to_string(c.pitch) + " -w " + shell_quote(speech.string()) + " " +
                            omni::demo::kColors[c.spoken];
    if (std::system(cmd.c_str()) != 0) throw omni::InputError("espeak-ng failed: " + cmd);
    // Two statements: as arguments of one call, `rate` could be read before read_wav_s16 sets it
    // (unspecified evaluation order; GCC passed 0, which resampled the voice to nothing).
    int rate = 0;
    const std::vector<float> raw = read_wav_s16(speech.string(), rate);
    std::vector<float> voice = resample(raw, rate, o.sample_rate);
    if (voice.empty()) throw omni::InputError("espeak-ng wrote no speech for: " + cmd);
    fs::remove(speech);
    float peak = 1e-6f;
    for (float v : voice) peak = std::max(peak, std::abs(v));
    DetRng noise(noise_seed);
    std::vector<float> mix(size_t(total), 0.0f);
    const double noise_rms = std::pow(10.0, -30.0 / 20.0);  // white noise at -30 dBFS
    for (auto& v : mix) v = float(noise_rms * noise.normal());
    const long start = std::lround(c.speech_start_s * o.sample_rate);
    for (size_t i = 0; i < voice.size() && start + long(i) < total; ++i)
      mix[size_t(start) + i] += 0.7f * voice[i] / peak;
    write_wav_s16(wav.string(), mix, o.sample_rate);
  }

  std::string cmd =
      "ffmpeg -nostdin -hide_banner -loglevel error -y -f rawvideo -pix_fmt rgb24 "
      "-video_size " +
      std::to_string(o.width) + "x" + std::to_string(o.height) + " -framerate " +
      std::to_string(o.fps) + " -i pipe:0 ";
  if (o.audio) cmd += "-i " + shell_quote(wav.string()) + " -map 0:v -map 1:a ";
  cmd += "-c:v libx264 -preset medium -crf 23 -pix_fmt yuv420p -threads 1 ";
  if (o.audio) cmd += "-c:a aac -b:a 64k -ar " + std::to_string(o.sample_rate) + " -ac 1 ";
  // Written under a temporary name and renamed when complete, so an interrupted run never leaves
  // a truncated clip that --skip-existing would keep.
  const fs::path part = dir / (std::string(name) + ".part");
  cmd += "-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 -f mp4 " +
         shell_quote(part.string());
  FILE* pipe = popen(cmd.c_str(), "w");
  if (!pipe) throw omni::InputError("cannot start ffmpeg: " + cmd);
  DetRng pix(noise_seed ^ 0x5DEECE66Dull);
  const int frames = int(std::lround(o.seconds * o.fps));
  cv::Mat img(o.height, o.width, CV_8UC3);
  const cv::Scalar fill(c.rgb[0], c.rgb[1], c.rgb[2]);  // the Mat is RGB, so is the scalar
  for (int f = 0; f < frames; ++f) {
    const double a = frames > 1 ? double(f) / (frames - 1) : 0.0;
    img.setTo(cv::Scalar::all(c.background));
    draw_shape(img, c.shape, c.x0 + a * (c.x1 - c.x0), c.y0 + a * (c.y1 - c.y0), c.size_px, fill);
    // Sensor-like noise over the whole picture.
    for (int y = 0; y < img.rows; ++y) {
      uint8_t* row = img.ptr<uint8_t>(y);
      for (int x = 0; x < img.cols * 3; ++x)
        row[x] = uint8_t(std::clamp(std::lround(row[x] + c.noise_sigma * pix.normal()), 0L, 255L));
    }
    if (std::fwrite(img.data, 1, img.total() * 3, pipe) != img.total() * 3) break;
  }
  const int rc = pclose(pipe);
  if (o.audio) fs::remove(wav);
  if (rc != 0) throw omni::InputError("ffmpeg failed (" + std::to_string(rc) + "): " + cmd);
  fs::rename(part, mp4);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Writes synthetic shapes & voices clips (MP4 H.264 + AAC) and manifest.jsonl"};
  Options o;
  app.add_option("--out", o.out, "output directory")->required();
  app.add_option("--count", o.count, "number of clips")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "random seed (clip i depends only on seed and i)");
  app.add_option("--width", o.width, "frame width")->check(CLI::Range(32, 4096));
  app.add_option("--height", o.height, "frame height")->check(CLI::Range(32, 4096));
  app.add_option("--fps", o.fps, "frame rate")->check(CLI::Range(1, 120));
  app.add_flag(
      "--no-audio", [&](int64_t) { o.audio = false; }, "write clips without audio");
  app.add_flag("--quiet", o.quiet, "no progress output");
  app.add_flag(
      "--skip-existing", o.skip_existing,
      "keep clips already in --out (resume an interrupted run; the manifest is rewritten)");
  CLI11_PARSE(app, argc, argv);
  if (o.width % 2 || o.height % 2) {
    std::cerr << "make_clips: --width and --height must be even (yuv420p)\n";
    return 2;
  }
  try {
    fs::create_directories(o.out);
    const fs::path manifest = fs::path(o.out) / "manifest.jsonl";
    std::ofstream out(manifest);
    if (!out) throw omni::InputError("cannot write '" + manifest.string() + "'");
    for (int i = 0; i < o.count; ++i) {
      out << omni::demo::clip_to_json(make_clip(o, i, o.out)) << "\n";
      if (!o.quiet) std::cerr << "\rmake_clips: " << i + 1 << "/" << o.count << std::flush;
    }
    if (!o.quiet) std::cerr << "\n";
    std::cout << "wrote " << o.count << " clips and " << manifest.string() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "make_clips: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
