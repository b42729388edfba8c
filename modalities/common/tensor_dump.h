// TensorDump: a sink that writes every tensor it receives (Tensor packets, TokenChunk embeddings
// or ids) into one safetensors file, one entry per packet named "<port>/<timestamp_us>".
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "core/contract.h"
#include "core/node.h"

namespace omni {

class TensorDump : public Node {
 public:
  // `in` is required, in1..in3 optional.
  static constexpr Input<AnyType> kIn{"in", "Tensor or TokenChunk packets"};
  static constexpr std::array<OptionalInput<AnyType>, 3> kMore{
      OptionalInput<AnyType>{"in1", "more Tensor or TokenChunk packets"},
      OptionalInput<AnyType>{"in2", "more Tensor or TokenChunk packets"},
      OptionalInput<AnyType>{"in3", "more Tensor or TokenChunk packets"}};
  static constexpr Param<std::string> kPath{"path", "", "output .safetensors file (required)"};
  static constexpr Param<int64_t> kMaxMb{"max_mb", 4096,
                                         "fail instead of holding more than this many MiB"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;
  // Writes the file (tensors are kept on the CPU until then).
  void close(Context& ctx) override;

  // Entry name for a packet: "<port>/<timestamp in microseconds>".
  static std::string entry_name(const std::string& port, int64_t timestamp_us);

 private:
  void take(Context& ctx, const Input<AnyType>& port);

  std::string path_;
  std::map<std::string, at::Tensor> tensors_;
  std::map<std::string, std::string> metadata_;  // per entry: what it came from (JSON)
  int64_t bytes_ = 0, max_bytes_ = 0;
};

}  // namespace omni
