// WAV / raw PCM audio through MediaReader from memory, audio only: the RIFF/WAVE demuxer, PCM and
// ADPCM decoders, then our resampling to 16 kHz mono and chunking. Input: the file.
#include <memory>
#include <string>

#include "fuzz/fuzz_util.h"
#include "modalities/media/media_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::make_shared<const std::string>(reinterpret_cast<const char*>(data), size);
  omni::fuzz::expect_clean_errors([&] {
    omni::MediaReaderOptions o;
    o.path = "memory.wav";
    o.data = bytes;
    o.video = false;
    o.threads = 1;
    o.audio_chunk_ms = 250;
    omni::MediaReader r(o);
    omni::MediaReader::Item item;
    for (int i = 0; i < 64 && r.next(item); ++i) {
      volatile float sink = item.audio.samples.empty() ? 0.f : item.audio.samples.back();
      (void)sink;
    }
  });
  return 0;
}
