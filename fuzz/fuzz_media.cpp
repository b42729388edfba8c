// Media files through our FFmpeg code, from memory (custom AVIOContext; the protocol whitelist and
// the nested-open guard in force): probe, then MediaReader demuxing and decoding the first frames
// and audio chunks (RGB conversion, downscale, resampling). Input: the file.
#include <memory>
#include <string>

#include "fuzz/fuzz_util.h"
#include "modalities/media/media_reader.h"
#include "modalities/media/probe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::make_shared<const std::string>(reinterpret_cast<const char*>(data), size);
  omni::fuzz::expect_clean_errors([&] {
    omni::ProbeOptions po;
    po.data = bytes;
    (void)omni::probe_to_text(omni::probe_media("memory", po));
  });
  omni::fuzz::expect_clean_errors([&] {
    omni::MediaReaderOptions o;
    o.path = "memory";
    o.data = bytes;
    o.max_side = 64;
    o.threads = 1;
    o.audio_chunk_ms = 100;
    omni::MediaReader r(o);
    omni::MediaReader::Item item;
    for (int i = 0; i < 16 && r.next(item); ++i) {
    }
  });
  return 0;
}
