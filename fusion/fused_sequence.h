// FusedSequence: the UnifiedSequencer's output (one segment of the unified token sequence with its
// TMRoPE 3-D positions), SpecialTokens, and build_fused_sequence(), the torch-light core of the
// sequencer that tests drive directly (DESIGN.md section 4).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/type_name.h"
#include "modalities/common/token_chunk.h"

namespace omni {

// Ids of the boundary tokens. The defaults are the built-in byte tokenizer's special tokens
// (modalities/text: 256 byte ids, then <|pad|>=256, <|bos|>=257, <|eos|>=258,
// <|image_start|>=259, <|image_end|>=260, <|audio_start|>=261, <|audio_end|>=262,
// <|video_start|>=263, <|video_end|>=264; vocabulary 272). Kept here as plain numbers so fusion
// does not depend on the text module; the UnifiedSequencer takes them as parameters.
struct SpecialTokens {
  int64_t pad = 256, bos = 257, eos = 258;
  int64_t image_start = 259, image_end = 260;
  int64_t audio_start = 261, audio_end = 262;
  int64_t video_start = 263, video_end = 264;
  static constexpr int64_t kByteVocab = 272;
};

// One run of consecutive tokens of a single source: text/boundary ids, or rows of an encoder's
// embeddings.
struct FusedPiece {
  Modality modality = Modality::kText;
  at::Tensor ids;         // [n] int64 (text and boundary tokens), or undefined
  at::Tensor embeddings;  // [n, d] (image/video/audio, or pre-embedded text), or undefined
  std::string boundary;   // "video_start", ... for a boundary token; empty otherwise
  int64_t offset = 0;     // index of the first token in the sequence
  int64_t length() const;
};

struct FusedSequence {
  std::vector<FusedPiece> pieces;  // in sequence order; lengths sum to length()
  at::Tensor positions;            // [3, L] int64: (t, h, w) per token (TMRoPE)
  std::vector<Modality> modality;  // per token; boundary tokens count as text
  std::vector<std::pair<int64_t, std::string>> boundaries;  // (token index, name)
  at::Tensor text_ids;  // [L] int64: the id of text/boundary tokens, -1 for embedded tokens
  int64_t segment = 0;  // 0 for the first (or only) segment; later ones continue the positions
  int64_t start_us = 0, end_us = 0;          // media time covered
  std::map<std::string, int64_t> tokens;     // tokens per modality (+ "boundary")
  std::map<std::string, int64_t> truncated;  // tokens dropped per modality by the budgets

  int64_t length() const { return static_cast<int64_t>(modality.size()); }
  // The position a token appended after this sequence takes on every axis (largest id + 1).
  int64_t next_position() const;
};

// How the sequencer lays out and numbers the tokens (Qwen2.5-Omni TMRoPE semantics).
struct SequencerOptions {
  SpecialTokens special;
  double position_ids_per_second = 25;  // Qwen2.5-Omni position_id_per_seconds
  double seconds_per_chunk = 2;         // audio/video interleaving chunk
  int64_t first_position = 0;           // where this segment's numbering starts
};

// One media item or text run, already ordered. Video items list their frames (or multi-frame
// chunks) in time order; a kVideoWithAudio item carries a clip's video and its soundtrack, which
// are interleaved in seconds_per_chunk pieces.
struct SequenceItem {
  enum class Kind { kText, kImage, kVideo, kAudio, kVideoWithAudio };
  Kind kind = Kind::kText;
  std::vector<const TokenChunk*> chunks;        // text/image: one; video/audio: in time order
  std::vector<const TokenChunk*> audio_chunks;  // kVideoWithAudio only
};

// Lays the items out with boundary tokens and assigns positions:
// text advances all axes by 1 per token; a boundary token takes one position; a visual chunk's
// temporal slice k takes t = start + trunc(time * ids_per_second) and h/w from its grid; audio
// tokens take consecutive ids advanced to their media time (25 ids/s), all axes equal; each item
// starts after the largest id so far. A video temporal slice's time is its chunk's start relative
// to the item's start plus k * seconds_per_grid (the chunk's own, or (end-start)/grid_t).
FusedSequence build_fused_sequence(const std::vector<SequenceItem>& items,
                                   const SequencerOptions& opts);

// HF Qwen2.5-Omni get_chunked_index: splits monotonically increasing position values (minus
// `base`) into runs of `per_chunk` ids; returns [begin, end) index pairs, one per chunk.
std::vector<std::pair<int64_t, int64_t>> chunk_by_position(const std::vector<int64_t>& values,
                                                           int64_t per_chunk, int64_t base);

}  // namespace omni

OMNI_TYPE_NAME(omni::FusedSequence, "FusedSequence");
// segment, length, times, positions (t/h/w), per-token modality, boundaries, text ids.
OMNI_PAYLOAD_JSON(omni::FusedSequence);
