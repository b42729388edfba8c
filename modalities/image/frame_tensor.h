// Frame <-> tensor helpers (built only with OMNI_WITH_MEDIA): zero-copy views of decoded frames
// and the Frame entry point of the reference preprocessing.
#pragma once

#include <ATen/core/Tensor.h>

#include "core/packet.h"
#include "modalities/image/preprocess.h"
#include "modalities/media/frame.h"

namespace omni {

// A [H, W, 3] uint8 CPU tensor that aliases the frame's pixels (explicit strides, so padded rows
// work). The tensor's deleter holds the packet's Frame, so the view stays valid after the packet
// is gone. The pixels are shared with every other reader: treat the tensor as read-only.
// Throws TypeError if the packet is not a Frame, InputError if the frame is not CV_8UC3.
at::Tensor frame_to_tensor(const Packet& frame_packet);

// preprocess_rgb() on a Frame's pixels. Throws InputError naming the frame on bad input.
at::Tensor preprocess_frame(const Frame& frame, const PreprocessOptions& options);

}  // namespace omni
