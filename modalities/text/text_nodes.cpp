#include "modalities/text/text_nodes.h"

#include <ATen/ATen.h>
#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include "core/error.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/token_chunk.h"
#include "modalities/common/torch_compat.h"

namespace omni {

Contract TextSource::contract() {
  return Contract()
      .doc("Emits the string `text` once, at `timestamp_us`, then finishes")
      .output(kText)
      .param(kTextParam)
      .param(kTimestamp)
      .param(kTexts);
}

void TextSource::open(Context& ctx) {
  const std::string& text = ctx.param(kTextParam);
  const StringList& more = ctx.param(kTexts);
  texts_.clear();
  if (!text.empty() || more.empty()) texts_.push_back(text);
  texts_.insert(texts_.end(), more.begin(), more.end());
  ts_ = Timestamp(ctx.param(kTimestamp));
}

Flow TextSource::process(Context& ctx) {
  int64_t us = ts_.us();
  for (const std::string& t : texts_) ctx.emit(kText, t, Timestamp(us++));
  return Flow::kDone;
}

Contract TextEncoder::contract() {
  return Contract()
      .doc(
          "Tokenizes text (or takes ids) into a text TokenChunk: token ids, or embeddings "
          "[N, d] looked up in a safetensors table when `weights` is set")
      .input(kText)
      .input(kIds)
      .output(kTokens)
      .param(kTokenizer)
      .param(kWeights)
      .param(kTensor)
      .param(kDevice)
      .param(kStream)
      .policy(InputPolicy::kImmediate);
}

void TextEncoder::open(Context& ctx) {
  // Errors carry no node prefix: the runtime adds one ("node 'x' (TextEncoder) failed in open()").
  try {
    tokenizer_ = load_tokenizer(ctx.param(kTokenizer));
  } catch (const Error& e) {
    throw ConfigError(e.what());
  }
  stream_ = ctx.param(kStream).empty() ? ctx.node_name() : ctx.param(kStream);
  device_ = ctx.param(kDevice);
  const c10::Device device = parse_device(device_, "param 'device'");
  const std::string& weights = ctx.param(kWeights);
  if (weights.empty()) return;
  const std::string& name = ctx.param(kTensor);
  const auto file = SafeTensorsFile::open(weights);
  if (!file->contains(name)) {
    throw InputError("'" + weights + "' has no tensor '" + name + "'");
  }
  at::Tensor t = file->get(name);
  if (t.dim() != 2 || t.size(0) < tokenizer_->vocab_size() || !t.is_floating_point()) {
    throw InputError("embedding table '" + name + "' in '" + weights + "' has shape " +
                     c10::str(t.sizes()) + " and dtype " +
                     std::string(c10::toString(t.scalar_type())) +
                     "; expected a floating [vocab >= " + std::to_string(tokenizer_->vocab_size()) +
                     ", d] table");
  }
  try {
    table_ = t.to(device, t.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
  } catch (const c10::Error& e) {
    throw ConfigError("moving the embedding table to " + device_ +
                      " failed: " + e.what_without_backtrace());
  }
}

Flow TextEncoder::process(Context& ctx) {
  std::vector<int64_t> ids;
  const auto text = ctx.input(kText);
  const auto in_ids = ctx.input(kIds);
  if (!text.empty()) {
    ids = tokenizer_->encode(text.get());
  } else if (!in_ids.empty()) {
    ids = in_ids.get();
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
  ctx.emit(kTokens, std::move(chunk), ctx.timestamp());
  return Flow::kContinue;
}

}  // namespace omni
