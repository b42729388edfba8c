#include "modalities/common/tensor_dump.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/token_chunk.h"

namespace omni {

Contract TensorDump::contract() {
  return Contract()
      .doc(
          "Writes every tensor received (Tensor packets; TokenChunk embeddings or ids) into one "
          "safetensors file at close, one entry per packet named <port>/<timestamp_us>; "
          "__metadata__ records each entry's source (JSON)")
      .input(kIn)
      .input(kMore[0])
      .input(kMore[1])
      .input(kMore[2])
      .param(kPath)
      .param(kMaxMb)
      .policy(InputPolicy::kImmediate);
}

std::string TensorDump::entry_name(const std::string& port, int64_t timestamp_us) {
  return port + "/" + std::to_string(timestamp_us);
}

void TensorDump::open(Context& ctx) {
  path_ = ctx.param(kPath);
  if (path_.empty()) throw ConfigError("param 'path' is empty (the output .safetensors file)");
  max_bytes_ = ctx.param(kMaxMb) * (int64_t{1} << 20);
}

Flow TensorDump::process(Context& ctx) {
  take(ctx, kIn);
  for (const auto& port : kMore) take(ctx, port);
  return Flow::kContinue;
}

void TensorDump::take(Context& ctx, const Input<AnyType>& port) {
  const Packet& p = ctx.input(port);
  if (p.empty()) return;
  const std::string name = entry_name(std::string(port.name), p.timestamp().us());
  nlohmann::json meta;
  at::Tensor t;
  if (p.holds<at::Tensor>()) {
    t = p.get<at::Tensor>();
    meta["type"] = "Tensor";
  } else if (p.holds<TokenChunk>()) {
    const TokenChunk& c = p.get<TokenChunk>();
    t = c.embeddings.defined() ? c.embeddings : c.ids;
    meta = {{"type", "TokenChunk"},
            {"field", c.embeddings.defined() ? "embeddings" : "ids"},
            {"modality", modality_name(c.modality)},
            {"start_us", c.start_us},
            {"end_us", c.end_us},
            {"grid", {c.grid_t, c.grid_h, c.grid_w}},
            {"stream", c.stream}};
  } else {
    throw TypeError("got a " + p.type().name + " on port '" + std::string(port.name) + "' at " +
                    p.timestamp().to_string() + "; expected Tensor or TokenChunk");
  }
  if (!t.defined()) {
    ctx.warn("packet without a tensor skipped (" + name + ")");
    ctx.count("skipped");
    return;
  }
  // Copy to CPU now so device memory is not held until close; CPU tensors stay shared.
  t = t.detach().to(at::kCPU).contiguous();
  bytes_ += static_cast<int64_t>(t.nbytes());
  if (bytes_ > max_bytes_)
    throw InputError("would hold more than max_mb (" + std::to_string(max_bytes_ >> 20) +
                     " MiB) at " + name);
  tensors_[name] = t;
  metadata_[name] = meta.dump();
  ctx.count("tensors");
}

void TensorDump::close(Context&) {
  try {
    save_safetensors(path_, tensors_, metadata_);
  } catch (const std::exception& e) {
    throw InputError("writing '" + path_ + "': " + e.what());
  }
  tensors_.clear();
  metadata_.clear();
}

}  // namespace omni
