// media_bench: figures for docs/PERFORMANCE.md.
//   media_bench throughput FILE THREADS [REPEATS]  MediaReader (video only, RGB frames) vs
//                                                  `ffmpeg -threads N -i FILE -f null -`
//   media_bench rss FILE                           decode video+audio, print peak RSS (MiB)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "modalities/media/media_reader.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Decodes the whole file; returns frames.
int64_t decode(const std::string& path, int threads, bool audio) {
  omni::MediaReaderOptions o;
  o.path = path;
  o.threads = threads;
  o.audio = audio;
  omni::MediaReader r(o);
  omni::MediaReader::Item it;
  int64_t n = 0;
  while (r.next(it)) n += it.kind == omni::MediaReader::Item::Kind::kVideo;
  return n;
}

double run_ffmpeg(const std::string& args) {
  std::string cmd = "ffmpeg -nostdin -hide_banner -loglevel error " + args;
  auto t0 = Clock::now();
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "failed: %s\n", cmd.c_str());
  return seconds_since(t0);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && std::string(argv[1]) == "throughput") {
    std::string path = argv[2];
    int threads = std::atoi(argv[3]);
    int repeats = argc >= 5 ? std::atoi(argv[4]) : 5;
    std::string t = std::to_string(threads);
    std::vector<double> ours, ff, ff_rgb;
    int64_t frames = 0;
    decode(path, threads, false);  // warm the page cache
    for (int i = 0; i < repeats; ++i) {
      auto t0 = Clock::now();
      frames = decode(path, threads, false);
      ours.push_back(seconds_since(t0));
      ff.push_back(run_ffmpeg("-threads " + t + " -i '" + path + "' -f null -"));
      ff_rgb.push_back(run_ffmpeg("-threads " + t + " -i '" + path + "' -filter_threads " + t +
                                  " -pix_fmt rgb24 -f null -"));
    }
    double o = median(ours), f = median(ff), fr = median(ff_rgb);
    std::printf("file %s, %lld frames, threads %d, median of %d\n", path.c_str(),
                static_cast<long long>(frames), threads, repeats);
    std::printf("MediaReader (decode + RGB24)       : %7.3f s  %7.1f fps\n", o, frames / o);
    std::printf("ffmpeg -f null (decode only)       : %7.3f s  %7.1f fps\n", f, frames / f);
    std::printf("ffmpeg -pix_fmt rgb24 -f null      : %7.3f s  %7.1f fps\n", fr, frames / fr);
    std::printf("ratio vs decode-only ffmpeg        : %.3f\n", f / o);
    std::printf("ratio vs ffmpeg with RGB conversion: %.3f\n", fr / o);
    return 0;
  }
  if (argc >= 3 && std::string(argv[1]) == "rss") {
    auto t0 = Clock::now();
    int64_t frames = decode(argv[2], 0, true);
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf("file %s: %lld frames in %.2f s, peak RSS %.1f MiB\n", argv[2],
                static_cast<long long>(frames), seconds_since(t0), ru.ru_maxrss / 1024.0);
    return 0;
  }
  std::fprintf(stderr,
               "usage: media_bench throughput FILE THREADS [REPEATS]\n"
               "       media_bench rss FILE\n");
  return 2;
}
