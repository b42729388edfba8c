// The chat-template interpreter: parse a template and render it with a conversation, as
// apply_chat_template does. Input: TEMPLATE \0 CONVERSATION-JSON (a list of messages, or an object
// {"messages": [...], "tools": ..., "documents": ..., "add_generation_prompt": ..., other keys as
// extra variables}); without a usable conversation a fixed two-message one is used.
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_util.h"
#include "modalities/text/jinja/chat_template.h"

using ojson = nlohmann::ordered_json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = omni::fuzz::split_parts(data, size, 2);
  ojson messages = ojson::parse(R"([{"role": "system", "content": "You are helpful."},
      {"role": "user", "content": [{"type": "image", "image": "a.png"},
                                    {"type": "text", "text": "What is this?"}]}])");
  omni::jinja::ChatTemplateOptions opt;
  opt.special_tokens = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  const ojson conv = ojson::parse(parts[1], nullptr, /*allow_exceptions=*/false);
  if (conv.is_array()) {
    messages = conv;
  } else if (conv.is_object()) {
    for (const auto& [k, v] : conv.items()) {
      if (k == "messages")
        messages = v;
      else if (k == "tools")
        opt.tools = v;
      else if (k == "documents")
        opt.documents = v;
      else if (k == "add_generation_prompt")
        opt.add_generation_prompt = v.is_boolean() && v.get<bool>();
      else if (k == "processor")
        opt.processor = v.is_boolean() && v.get<bool>();
      else
        opt.extra[k] = v;
    }
  }
  // The default limits, except smaller loop and output budgets so one input stays fast (the
  // limit checks are the same code).
  omni::jinja::Limits limits;
  limits.max_loop_iterations = 20000;
  limits.max_output_bytes = 1 << 20;
  omni::fuzz::expect_clean_errors(
      [&] { (void)omni::jinja::apply_chat_template(parts[0], messages, opt, limits); });
  return 0;
}
