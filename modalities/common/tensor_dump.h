// TensorDump: a sink that writes every tensor it receives (Tensor packets, TokenChunk embeddings
// or ids) into one safetensors file, one entry per packet named "<port>/<timestamp_us>".
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "core/contract.h"
#include "core/node.h"

namespace omni {

class TensorDump : public Node {
 public:
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;
  // Writes the file (tensors are kept on the CPU until then).
  void close(Context& ctx) override;

  // Entry name for a packet: "<port>/<timestamp in microseconds>".
  static std::string entry_name(const std::string& port, int64_t timestamp_us);

 private:
  std::string path_;
  std::vector<std::string> ports_;
  std::map<std::string, at::Tensor> tensors_;
  std::map<std::string, std::string> metadata_;  // per entry: what it came from (JSON)
  int64_t bytes_ = 0, max_bytes_ = 0;
};

}  // namespace omni
