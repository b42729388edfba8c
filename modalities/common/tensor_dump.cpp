#include "modalities/common/tensor_dump.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/token_chunk.h"

namespace omni {
namespace {

const char* const kPorts[] = {"in", "in1", "in2", "in3"};

}  // namespace

Contract TensorDump::contract() {
  return Contract()
      .doc(
          "Writes every tensor received (Tensor packets; TokenChunk embeddings or ids) into one "
          "safetensors file at close, one entry per packet named <port>/<timestamp_us>; "
          "__metadata__ records each entry's source (JSON)")
      .input<AnyType>("in", "Tensor or TokenChunk packets")
      .optional_input<AnyType>("in1", "more Tensor or TokenChunk packets")
      .optional_input<AnyType>("in2", "more Tensor or TokenChunk packets")
      .optional_input<AnyType>("in3", "more Tensor or TokenChunk packets")
      .param("path", "", "output .safetensors file (required)")
      .param("max_mb", int64_t{4096}, "fail instead of holding more than this many MiB")
      .policy(InputPolicy::kImmediate);
}

std::string TensorDump::entry_name(const std::string& port, int64_t timestamp_us) {
  return port + "/" + std::to_string(timestamp_us);
}

void TensorDump::open(Context& ctx) {
  path_ = ctx.params().get_string("path");
  if (path_.empty()) throw ConfigError("TensorDump needs a 'path'");
  max_bytes_ = ctx.params().get_int("max_mb") * (int64_t{1} << 20);
  ports_.clear();
  for (const char* p : kPorts) ports_.push_back(p);
}

Flow TensorDump::process(Context& ctx) {
  for (size_t i = 0; i < ports_.size(); ++i) {
    const Packet& p = ctx.input(static_cast<int>(i));
    if (p.empty()) continue;
    const std::string name = entry_name(ports_[i], p.timestamp().us());
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
      throw TypeError("TensorDump got a " + p.type().name + " on port '" + ports_[i] + "' at " +
                      p.timestamp().to_string() + "; expected Tensor or TokenChunk");
    }
    if (!t.defined()) {
      ctx.warn("packet without a tensor skipped (" + name + ")");
      ctx.count("skipped");
      continue;
    }
    // Copy to CPU now so device memory is not held until close; CPU tensors stay shared.
    t = t.detach().to(at::kCPU).contiguous();
    bytes_ += static_cast<int64_t>(t.nbytes());
    if (bytes_ > max_bytes_)
      throw InputError("TensorDump would hold more than max_mb (" +
                       std::to_string(max_bytes_ >> 20) + " MiB) at " + name);
    tensors_[name] = t;
    metadata_[name] = meta.dump();
    ctx.count("tensors");
  }
  return Flow::kContinue;
}

void TensorDump::close(Context&) {
  try {
    save_safetensors(path_, tensors_, metadata_);
  } catch (const std::exception& e) {
    throw InputError("TensorDump: writing '" + path_ + "': " + e.what());
  }
  tensors_.clear();
  metadata_.clear();
}

}  // namespace omni
