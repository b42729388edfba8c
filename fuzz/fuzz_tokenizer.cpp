// Hugging Face tokenizers: tokenizer.json + tokenizer_config.json loaded from a directory, then
// encode and decode. Input: TOKENIZER.JSON \0 TOKENIZER_CONFIG.JSON (empty = absent) \0 TEXT.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "modalities/text/hf_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = omni::fuzz::split_parts(data, size, 3);
  const auto& dir = omni::fuzz::scratch_dir();
  omni::fuzz::write_file(dir / "tokenizer.json", parts[0]);
  std::error_code ec;
  if (parts[1].empty())
    std::filesystem::remove(dir / "tokenizer_config.json", ec);
  else
    omni::fuzz::write_file(dir / "tokenizer_config.json", parts[1]);
  omni::fuzz::expect_clean_errors([&] {
    auto tok = omni::HfTokenizer::from_directory(dir.string());
    const std::vector<int64_t> ids = tok->encode(parts[2]);
    (void)tok->decode(ids);
    (void)tok->decode(ids, /*skip_special_tokens=*/true);
    for (int64_t id : ids) (void)tok->id_to_token(id);
    (void)tok->all_special_ids();
    // Ids taken from the text's bytes: in range or not, decode answers or throws InputError.
    std::vector<int64_t> raw;
    for (size_t i = 0; i + 1 < parts[2].size() && raw.size() < 64; i += 2)
      raw.push_back(static_cast<int64_t>(static_cast<uint8_t>(parts[2][i]) << 8 |
                                         static_cast<uint8_t>(parts[2][i + 1])) -
                    256);
    (void)tok->decode(raw, true);
  });
  return 0;
}
