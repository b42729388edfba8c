// UnifiedSequencer: gathers the TokenChunks of one segment (a whole input, or sliding windows for
// streaming graphs), applies token budgets, orders and pairs them, and emits a FusedSequence with
// TMRoPE positions (DESIGN.md section 4). SegmentAssembler is the node's logic without a graph.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/node.h"
#include "fusion/fused_sequence.h"

namespace omni {

struct SequencerConfig {
  SequencerOptions layout;
  double segment_s = 0;                 // 0: one segment for the whole input
  std::string text_position = "after";  // after | before | time (text relative to the media)
  bool pair_audio_video = true;         // interleave a clip's video with its soundtrack
  bool continue_positions = true;       // segment k+1 numbers on after segment k's largest id
  // Token budgets (0: unlimited). Media over budget lose their latest tokens (audio rows, whole
  // video frames / images); text keeps its first tokens. Every drop is recorded.
  int64_t max_tokens = 0, max_text = 0, max_image = 0, max_video = 0, max_audio = 0;
  void validate() const;  // throws ConfigError
};

class SegmentAssembler {
 public:
  explicit SegmentAssembler(SequencerConfig cfg);
  void add(TokenChunk chunk);
  // Streaming: segments whose window ends at or before `watermark_us` (every input has moved
  // past it). Whole-input mode: nothing until finish().
  std::vector<FusedSequence> take_ready(int64_t watermark_us);
  // Everything still buffered (at close / when all inputs are done).
  std::vector<FusedSequence> finish();
  const SequencerConfig& config() const { return cfg_; }

  // Lays out one segment's chunks (budgets, order, pairing, positions); public for tests.
  FusedSequence assemble(std::vector<TokenChunk> chunks, int64_t segment, int64_t first_position);

 private:
  SequencerConfig cfg_;
  std::map<int64_t, std::vector<TokenChunk>> windows_;  // window index -> chunks
  int64_t next_segment_ = 0, next_position_ = 0;
};

class UnifiedSequencer : public Node {
 public:
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;
  void close(Context& ctx) override;

 private:
  void emit_all(Context& ctx, std::vector<FusedSequence> seqs);
  std::unique_ptr<SegmentAssembler> asm_;
  std::map<int, int64_t> latest_us_;  // media input port -> latest chunk start seen
  int64_t last_ts_ = INT64_MIN;
};

}  // namespace omni
