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
  // Whole-input mode: each text chunk is a prompt of its own after the same media, one sequence
  // per text chunk (several questions about one input); all of them segment 0.
  bool prompt_per_text = false;
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
  // Whole-input mode, while the input still arrives: the layout of the media gathered so far, cut
  // after the first `chunks` chunk_s pieces of media time (from the earliest media chunk's start)
  // or before the first boundary token after the media began (text is left out). It is the start
  // of what finish() will lay out as long as no media chunk of those pieces arrives later and no
  // token budget cuts. Empty when there is no media. kAllChunks: all the media gathered.
  static constexpr int64_t kAllChunks = INT64_MAX / 2;
  FusedSequence media_prefix(int64_t chunks);
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
  static constexpr OptionalInput<TokenChunk> kText{
      "text", "text tokens (ids or embeddings), e.g. the prompt"};
  static constexpr OptionalInput<TokenChunk> kImage{"image", "image tokens"};
  static constexpr OptionalInput<TokenChunk> kVideo{
      "video", "video frame tokens (one chunk per frame or clip)"};
  static constexpr OptionalInput<TokenChunk> kAudio{"audio", "audio tokens"};
  static constexpr Output<FusedSequence> kSequence{"sequence", "one fused sequence per segment"};
  static constexpr Output<FusedSequence> kPartial{
      "partial",
      "with emit_partial: the media laid out so far (complete chunk_s pieces, no text), growing "
      "while the input arrives; for Generate.prefill"};
  static constexpr Param<double> kSegment{
      "segment_s", 0.0, "segment length in seconds for streaming; 0 = the whole input"};
  static constexpr Param<double> kChunk{
      "chunk_s", 2.0, "audio/video interleaving chunk in seconds (Qwen2.5-Omni: 2)"};
  static constexpr Param<double> kPositionIdsPerSecond{
      "position_ids_per_second", 25.0, "temporal position ids per second of media time"};
  static constexpr Param<std::string> kTextPosition{
      "text_position", "after", "where text goes relative to media: after, before, time"};
  static constexpr Param<bool> kPairAudioVideo{
      "pair_audio_video", true,
      "interleave a clip's video with its audio (same stream prefix, or the only video with the "
      "only audio)"};
  static constexpr Param<bool> kContinuePositions{
      "continue_positions", true, "later segments number on after the largest id so far"};
  static constexpr Param<bool> kPromptPerText{
      "prompt_per_text", false,
      "whole input: each text packet is a prompt of its own after the same media (one sequence "
      "per text packet, e.g. several questions about one clip)"};
  static constexpr Param<bool> kEmitPartial{
      "emit_partial", false,
      "whole input, text after the media: each time another chunk_s of media time is complete on "
      "every open media input, emit the media laid out so far on `partial` (a Generate with "
      "share_prefix prefills it while the input still arrives)"};
  static constexpr Param<int64_t> kMaxTokens{"max_tokens", 0,
                                             "token budget per sequence (0 = unlimited)"};
  static constexpr Param<int64_t> kMaxText{"max_text_tokens", 0,
                                           "text token budget (0 = unlimited)"};
  static constexpr Param<int64_t> kMaxImage{"max_image_tokens", 0,
                                            "image token budget (0 = unlimited)"};
  static constexpr Param<int64_t> kMaxVideo{"max_video_tokens", 0,
                                            "video token budget (0 = unlimited)"};
  static constexpr Param<int64_t> kMaxAudio{"max_audio_tokens", 0,
                                            "audio token budget (0 = unlimited)"};
  static constexpr Param<int64_t> kImageStart{"image_start_id", SpecialTokens{}.image_start,
                                              "<|image_start|> id (byte tokenizer default)"};
  static constexpr Param<int64_t> kImageEnd{"image_end_id", SpecialTokens{}.image_end,
                                            "<|image_end|> id"};
  static constexpr Param<int64_t> kAudioStart{"audio_start_id", SpecialTokens{}.audio_start,
                                              "<|audio_start|> id"};
  static constexpr Param<int64_t> kAudioEnd{"audio_end_id", SpecialTokens{}.audio_end,
                                            "<|audio_end|> id"};
  static constexpr Param<int64_t> kVideoStart{"video_start_id", SpecialTokens{}.video_start,
                                              "<|video_start|> id"};
  static constexpr Param<int64_t> kVideoEnd{"video_end_id", SpecialTokens{}.video_end,
                                            "<|video_end|> id"};
  static Contract contract();
  void open(Context& ctx) override;
  Flow process(Context& ctx) override;
  void close(Context& ctx) override;

 private:
  void emit_all(Context& ctx, std::vector<FusedSequence> seqs);
  void emit_partial(Context& ctx);
  std::unique_ptr<SegmentAssembler> asm_;
  std::map<int, int64_t> latest_us_;   // media input port -> latest chunk start seen
  std::map<int, int64_t> covered_us_;  // media input port -> media time all of whose chunks came
  int64_t first_media_us_ = INT64_MAX;
  bool partial_ = false;
  int64_t partial_chunks_ = 0;  // complete chunk_s pieces already emitted on `partial`
  int64_t partial_tokens_ = 0;
  int64_t last_ts_ = INT64_MIN;
};

}  // namespace omni
