// Chat templates of Hugging Face checkpoints: find the template in a checkpoint directory, build
// the context transformers' apply_chat_template passes to it, and render it with the Jinja
// interpreter in jinja.h. Torch-free (target omni_template).
//
//   auto tmpl = omni::jinja::find_chat_template("/models/Qwen2.5-Omni-7B");
//   ChatTemplateOptions opt;
//   opt.add_generation_prompt = true;
//   opt.special_tokens = omni::jinja::special_tokens_from_config(tokenizer_config_json);
//   std::string prompt = omni::jinja::apply_chat_template(tmpl.text, messages, opt);
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "modalities/text/jinja/jinja.h"

namespace omni::jinja {

struct ChatTemplateOptions {
  bool add_generation_prompt = false;
  // JSON schemas of the tools, or null for none (transformers passes tools=None).
  nlohmann::ordered_json tools = nullptr;
  // Retrieval documents, or null.
  nlohmann::ordered_json documents = nullptr;
  // The tokenizer's named special tokens (bos_token, eos_token, pad_token, ...), see
  // special_tokens_from_config().
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
  // Further template variables (transformers' **kwargs), e.g. enable_thinking, add_vision_id.
  // They override special tokens of the same name.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  // Normalise as a processor's apply_chat_template does (Qwen2-VL / Qwen2.5-Omni processors):
  // OpenAI-style {"type": "image_url", "image_url": {"url": u}} content blocks become
  // {"type": "image", "url": u}. A tokenizer's apply_chat_template leaves them alone.
  bool processor = false;
};

// The context transformers' apply_chat_template renders a conversation with
// (tokenization_utils_base.py + utils/chat_template_utils.py, transformers 5):
//  - each message must be an object; keys whose value is null are dropped;
//  - a message with reasoning under "reasoning_content", "thinking" or "reasoning" gets it under
//    both "thinking" (first key) and "reasoning_content";
//  - variables: messages, tools, documents, add_generation_prompt, the special tokens, then extra.
// Throws omni::InputError for an empty conversation or a message that is not an object.
nlohmann::ordered_json chat_template_context(const nlohmann::ordered_json& messages,
                                             const ChatTemplateOptions& options);

// Renders `tmpl` with an already built context (see chat_template_context()).
std::string render_chat_template(const std::string& tmpl, const nlohmann::ordered_json& context,
                                 const Limits& limits = {});

// chat_template_context() + render_chat_template(): the string
// `apply_chat_template(messages, tokenize=False, ...)` returns.
std::string apply_chat_template(const std::string& tmpl, const nlohmann::ordered_json& messages,
                                const ChatTemplateOptions& options = {}, const Limits& limits = {});

// Which loader's precedence find_chat_template() follows.
enum class TemplateOwner {
  // AutoProcessor (multimodal models such as Qwen2-VL / Qwen2.5-Omni): chat_template.json (the
  // legacy processor file) > chat_template.jinja > tokenizer_config.json "chat_template".
  kProcessor,
  // AutoTokenizer: chat_template.jinja > tokenizer_config.json "chat_template"
  // (chat_template.json is a processor file and is not read).
  kTokenizer,
};

struct ChatTemplateSource {
  std::string text;
  std::filesystem::path file;  // the file it came from
};

// Finds the chat template of a checkpoint directory. A "chat_template" that is a list of
// {"name", "template"} entries yields the one named "default". Throws omni::InputError naming the
// directory and the files tried when there is none, and naming the file when it is malformed.
ChatTemplateSource find_chat_template(const std::filesystem::path& dir,
                                      TemplateOwner owner = TemplateOwner::kProcessor);

// The named special tokens of a tokenizer_config.json (bos/eos/unk/sep/pad/cls/mask_token; a
// token given as {"content": ...} is read from its content; null ones are left out), as
// transformers' special_tokens_map gives them to templates.
nlohmann::ordered_json special_tokens_from_config(const nlohmann::ordered_json& tokenizer_config);

}  // namespace omni::jinja
