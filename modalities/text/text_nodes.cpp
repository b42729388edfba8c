#include "modalities/text/text_nodes.h"

#include <ATen/ATen.h>
#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include "core/error.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/token_chunk.h"

namespace omni {

Contract TextSource::contract() {
  return Contract()
      .doc("Emits the string `text` once, at `timestamp_us`, then finishes")
      .output<std::string>("text", "the text")
      .param("text", "", "text to emit (UTF-8)")
      .param("timestamp_us", int64_t{0}, "timestamp of the packet, microseconds");
}

void TextSource::open(Context& ctx) {
  text_ = ctx.params().get_string("text");
  ts_ = Timestamp(ctx.params().get_int("timestamp_us"));
}

Flow TextSource::process(Context& ctx) {
  ctx.emit<std::string>("text", text_, ts_);
  return Flow::kDone;
}

Contract TextEncoder::contract() {
  return Contract()
      .doc(
          "Tokenizes text (or takes ids) into a text TokenChunk: token ids, or embeddings "
          "[N, d] looked up in a safetensors table when `weights` is set")
      .optional_input<std::string>("text", "UTF-8 text; special tokens in it are recognised")
      .optional_input<std::vector<int64_t>>("ids", "already tokenized ids")
      .output<TokenChunk>("tokens", "modality text; ids [N] int64, or embeddings [N, d]")
      .param("tokenizer", "byte",
             "'byte' (built-in byte tokenizer), a tokenizer.json path or a Hugging Face checkpoint "
             "directory")
      .param("weights", "", "safetensors file with the embedding table; empty: emit ids only")
      .param("tensor", "embed_tokens.weight", "name of the [vocab, d] table in `weights`")
      .param("device", "cpu", "device of the embeddings: cpu, cuda, cuda:N")
      .param("stream", "", "stream id written into the chunks (default: the node name)")
      .policy(InputPolicy::kImmediate);
}

void TextEncoder::open(Context& ctx) {
  const auto& p = ctx.params();
  const std::string where = "TextEncoder '" + ctx.node_name() + "': ";
  try {
    tokenizer_ = load_tokenizer(p.get_string("tokenizer"));
  } catch (const Error& e) {
    throw ConfigError(where + e.what());
  }
  stream_ = p.get_string("stream").empty() ? ctx.node_name() : p.get_string("stream");
  device_ = p.get_string("device");
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(device_);
  } catch (const c10::Error& e) {
    throw ConfigError(where + "device '" + device_ + "' is not a valid torch device");
  }
  if (device.is_cuda() && !at::hasCUDA()) {
    throw ConfigError(where + "device '" + device_ + "' requested but libtorch has no CUDA");
  }
  const std::string& weights = p.get_string("weights");
  if (weights.empty()) return;
  const std::string& name = p.get_string("tensor");
  const auto file = SafeTensorsFile::open(weights);
  if (!file->contains(name)) {
    throw InputError(where + "'" + weights + "' has no tensor '" + name + "'");
  }
  at::Tensor t = file->get(name);
  if (t.dim() != 2 || t.size(0) < tokenizer_->vocab_size() || !t.is_floating_point()) {
    throw InputError(where + "embedding table '" + name + "' in '" + weights + "' has shape " +
                     c10::str(t.sizes()) + " and dtype " +
                     std::string(c10::toString(t.scalar_type())) +
                     "; expected a floating [vocab >= " + std::to_string(tokenizer_->vocab_size()) +
                     ", d] table");
  }
  try {
    table_ = t.to(device, t.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
  } catch (const c10::Error& e) {
    throw ConfigError(where + "moving the embedding table to " + device_ +
                      " failed: " + e.what_without_backtrace());
  }
}

Flow TextEncoder::process(Context& ctx) {
  std::vector<int64_t> ids;
  const Packet& text = ctx.input("text");
  const Packet& in_ids = ctx.input("ids");
  if (!text.empty()) {
    ids = tokenizer_->encode(text.get<std::string>());
  } else if (!in_ids.empty()) {
    ids = in_ids.get<std::vector<int64_t>>();
    const int64_t limit = table_.defined() ? table_.size(0) : tokenizer_->vocab_size();
    for (int64_t id : ids) {
      if (id < 0 || id >= limit) {
        throw InputError("id " + std::to_string(id) + " is outside 0.." +
                         std::to_string(limit - 1));
      }
    }
  } else {
    return Flow::kContinue;
  }
  TokenChunk chunk;
  chunk.modality = Modality::kText;
  chunk.start_us = chunk.end_us = ctx.timestamp().us();
  chunk.stream = stream_;
  const auto n = static_cast<int64_t>(ids.size());
  chunk.grid_w = n;
  at::Tensor id_tensor = at::empty({n}, at::kLong);
  std::copy(ids.begin(), ids.end(), id_tensor.data_ptr<int64_t>());
  if (table_.defined()) {
    chunk.embeddings = table_.index_select(0, id_tensor.to(table_.device()));
  } else {
    chunk.ids = id_tensor;
  }
  ctx.count("tokens", n);
  ctx.emit<TokenChunk>("tokens", std::move(chunk), ctx.timestamp());
  return Flow::kContinue;
}

}  // namespace omni
