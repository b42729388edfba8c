// Qwen2.5-Omni (thinker) as graph nodes, the pipeline ask_clip --model runs, split at its natural
// seams (examples/graphs/qwen2_5_omni.yaml):
//   MediaSource -> QwenOmniProcessor -> QwenVisionTower -> QwenAudioTower -> QwenOmniSequencer
//   (+ the question from TextSource) -> QwenOmniGenerate -> text / ids.
// Every node takes `model` (a Hugging Face directory) and loads only what it needs from it.
#pragma once

#include "core/registry.h"

namespace omni {

void register_qwen_omni_nodes(Registry& r);

}  // namespace omni
