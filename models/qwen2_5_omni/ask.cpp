#include "models/qwen2_5_omni/ask.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

#include "core/error.h"
#include "modalities/common/checkpoint.h"
#include "modalities/common/safetensors.h"
#include "models/qwen2_5_omni/thinker.h"

namespace omni::qwen {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Seconds since this process started (exec), from /proc/self/stat's start time and the boot
// clock; -1 where that is not available. Time to first token is measured from here, so the
// dynamic loading of libtorch counts too (scripts/bench-real measures transformers the same way).
double seconds_since_process_start() {
  std::ifstream f("/proc/self/stat");
  std::string stat;
  std::getline(f, stat);
  const auto close = stat.rfind(')');  // the command name may contain spaces
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i < 22) continue;
    timespec now{};
    clock_gettime(CLOCK_BOOTTIME, &now);
    const double ticks = double(sysconf(_SC_CLK_TCK));
    return double(now.tv_sec) + double(now.tv_nsec) * 1e-9 - std::stod(field) / ticks;
  }
  return -1;
}

double max_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

}  // namespace

std::optional<bool> parse_on_off(const std::string& text, const std::string& flag) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t.empty() || t == "auto") return std::nullopt;
  if (t == "on" || t == "true" || t == "1" || t == "yes") return true;
  if (t == "off" || t == "false" || t == "0" || t == "no") return false;
  throw ConfigError(flag + ": expected on, off or auto, got '" + text + "'");
}

void run_ask(const AskOptions& o, std::ostream& out, std::ostream& err) {
  if (o.question.empty()) throw ConfigError("a QUESTION is required");
  if (o.max_new_tokens < 0) throw ConfigError("--max-new-tokens must be >= 0");
  if (!(o.fps > 0)) throw ConfigError("--fps must be positive");
  if (!o.file.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(o.file, ec))
      throw InputError(o.file + ": no such file (expected an image, an audio file or a video)");
  }
  const auto t0 = std::chrono::steady_clock::now();
  ThinkerOptions to;
  to.device = o.device;
  to.dtype = o.dtype;
  const auto thinker = Thinker::open(o.model_dir, to);
  const double load_s = seconds_since(t0);

  const auto t1 = std::chrono::steady_clock::now();
  PromptOptions po;
  po.system = o.system;
  po.media.fps = o.fps;
  po.media.audio_in_video = o.audio_in_video;
  if (o.file.empty() && o.audio_in_video.value_or(false))
    throw ConfigError("--audio-in-video on needs a video FILE");
  const ThinkerPrompt prompt = thinker->prepare(o.file, o.question, po);
  if (!o.dump_logits.empty()) {
    const at::Tensor logits = thinker->prompt_logits(prompt);
    const at::Tensor pos = prompt.position_ids.view({3, -1}).to(at::kCPU, at::kLong).contiguous();
    nlohmann::json meta_ids = prompt.ids;
    save_safetensors(o.dump_logits, {{"logits", logits}, {"position_ids", pos}},
                     {{"prompt_ids", meta_ids.dump()},
                      {"rope_delta", std::to_string(prompt.rope_delta)},
                      {"model", o.model_dir}});
  }
  const double prompt_s = seconds_since(t1);

  SampleOptions so;
  so.max_new_tokens = o.max_new_tokens;
  so.do_sample = o.temperature > 0;
  so.temperature = o.temperature > 0 ? o.temperature : 1.0;
  so.top_k = o.top_k;
  so.top_p = o.top_p;
  so.seed = o.seed;
  const auto t2 = std::chrono::steady_clock::now();
  // Token times: the first token ends the prompt's forward pass (prefill), the rest is decoding.
  double first_token_s = -1;  // from the start of loading to the first generated token
  std::chrono::steady_clock::time_point first_token, last_token;
  double ttft_s = -1;
  int64_t produced = 0;
  const TextCallback stream = [&](int64_t id, const std::string& text) {
    if (id >= 0) {  // -1: the streamer's held-back text at the end, not a token
      last_token = std::chrono::steady_clock::now();
      if (produced++ == 0) {
        first_token = last_token;
        ttft_s = seconds_since_process_start();
        first_token_s = seconds_since(t0);
      }
    }
    if (!o.json && !text.empty()) out << text << std::flush;
  };
  const Answer a = thinker->generate(prompt, so, stream);
  const double gen_s = seconds_since(t2);
  const double tps = gen_s > 0 ? double(a.ids.size()) / gen_s : 0.0;
  const double prefill_s =
      produced > 0 ? std::chrono::duration<double>(first_token - t2).count() : 0.0;
  const double decode_s =
      produced > 1 ? std::chrono::duration<double>(last_token - first_token).count() : 0.0;

  if (o.json) {
    nlohmann::ordered_json j;
    j["answer"] = a.text;
    j["ids"] = a.ids;
    j["prompt_ids"] = prompt.ids;
    j["stopped"] = a.stopped;
    j["media"] = media_kind_name(prompt.kind);
    j["audio_in_video"] = prompt.audio_in_video;
    nlohmann::ordered_json tokens = nlohmann::ordered_json::object();
    for (const char* k : {"text", "image", "video", "audio"})
      tokens[k] = prompt.tokens.count(k) ? prompt.tokens.at(k) : 0;
    j["tokens"] = tokens;
    j["rope_delta"] = prompt.rope_delta;
    j["architecture"] = thinker->architecture();
    j["device"] = o.device;
    j["dtype"] = o.dtype;
    j["load_seconds"] = load_s;
    j["first_token_seconds"] = first_token_s;
    const LoadReport& w = thinker->load_report();
    j["weights_bytes"] = w.bytes;
    j["weights_mapped_bytes"] = w.mapped_bytes;
    j["prompt_seconds"] = prompt_s;
    j["generate_seconds"] = gen_s;
    j["tokens_per_s"] = tps;
    // Split of generate_seconds: the prompt's forward pass up to the first token, then decoding.
    j["prefill_seconds"] = prefill_s;
    j["prefill_tokens_per_s"] = prefill_s > 0 ? double(prompt.ids.size()) / prefill_s : 0.0;
    j["decode_tokens_per_s"] = decode_s > 0 ? double(produced - 1) / decode_s : 0.0;
    j["time_to_first_token_s"] = ttft_s;  // from process start, loading included
    j["max_rss_mb"] = max_rss_mb();
    // Model output: bytes that are not valid UTF-8 are written as U+FFFD.
    out << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  } else {
    out << "\n" << std::flush;
    char line[256];
    std::snprintf(
        line, sizeof line,
        "(load %.2f s, prompt %lld tokens %.2f s, %zu new tokens %.2f s = %.1f tokens/s)\n", load_s,
        static_cast<long long>(prompt.ids.size()), prompt_s, a.ids.size(), gen_s, tps);
    err << line;
    if (o.verbose)
      for (const auto& [k, v] : prompt.tokens) err << "  " << k << " tokens: " << v << "\n";
  }
}

}  // namespace omni::qwen
