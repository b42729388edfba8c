#include "modalities/text/jinja/chat_template.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace omni::jinja {

using ojson = nlohmann::ordered_json;

ojson chat_template_context(const ojson& messages, const ChatTemplateOptions& options) {
  if (!messages.is_array()) throw InputError("chat template: messages must be a JSON array");
  if (messages.empty()) {
    throw InputError(
        "chat template: cannot apply a chat template to an empty conversation; provide at least "
        "one message");
  }
  ojson chat = ojson::array();
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    if (!m.is_object()) {
      throw InputError("chat template: message " + std::to_string(i) +
                       " is not a JSON object (messages are {\"role\": ..., \"content\": ...})");
    }
    ojson msg = ojson::object();
    for (const auto& [k, v] : m.items()) {
      if (!v.is_null()) msg[k] = v;
    }
    static const char* kReasoning[] = {"reasoning_content", "thinking", "reasoning"};
    const ojson* reasoning = nullptr;
    for (const char* key : kReasoning) {
      if (msg.contains(key)) {
        reasoning = &msg[key];
        break;
      }
    }
    if (reasoning) {
      ojson r = *reasoning;
      ojson aliased = ojson::object();
      aliased["thinking"] = r;
      for (const auto& [k, v] : msg.items()) aliased[k] = v;
      aliased["reasoning_content"] = r;
      msg = std::move(aliased);
    }
    if (options.processor && msg.contains("content") && msg["content"].is_array()) {
      for (auto& block : msg["content"]) {
        if (block.is_object() && block.value("type", "") == "image_url" &&
            block.contains("image_url")) {
          const ojson& info = block["image_url"];
          ojson url = info.is_object() ? info.value("url", ojson("")) : info;
          block = ojson{{"type", "image"}, {"url", url}};
        }
      }
    }
    chat.push_back(std::move(msg));
  }
  ojson ctx = ojson::object();
  ctx["messages"] = std::move(chat);
  ctx["tools"] = options.tools;
  ctx["documents"] = options.documents;
  ctx["add_generation_prompt"] = options.add_generation_prompt;
  if (!options.special_tokens.is_object() || !options.extra.is_object()) {
    throw InputError("chat template: special_tokens and extra must be JSON objects");
  }
  for (const auto& [k, v] : options.special_tokens.items()) ctx[k] = v;
  for (const auto& [k, v] : options.extra.items()) ctx[k] = v;
  return ctx;
}

std::string render_chat_template(const std::string& tmpl, const ojson& context,
                                 const Limits& limits) {
  return Template(tmpl, limits).render(context);
}

std::string apply_chat_template(const std::string& tmpl, const ojson& messages,
                                const ChatTemplateOptions& options, const Limits& limits) {
  return render_chat_template(tmpl, chat_template_context(messages, options), limits);
}

namespace {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw InputError("chat template: cannot read " + p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ojson read_json(const std::filesystem::path& p) {
  try {
    return ojson::parse(read_text(p));
  } catch (const nlohmann::json::exception& e) {
    throw InputError("chat template: " + p.string() + " is not valid JSON: " + e.what());
  }
}

// A "chat_template" value: a string, or a list of {"name", "template"} (the default is used).
std::string template_value(const ojson& v, const std::filesystem::path& file) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    for (const auto& entry : v) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        return entry["template"].get<std::string>();
      }
    }
    throw InputError("chat template: " + file.string() +
                     " lists several chat templates but none named \"default\"");
  }
  throw InputError("chat template: \"chat_template\" in " + file.string() +
                   " is neither a string nor a list of named templates");
}

}  // namespace

ChatTemplateSource find_chat_template(const std::filesystem::path& dir, TemplateOwner owner) {
  if (!std::filesystem::is_directory(dir)) {
    throw InputError("chat template: " + dir.string() + " is not a directory");
  }
  const auto legacy = dir / "chat_template.json";
  const auto raw = dir / "chat_template.jinja";
  const auto config = dir / "tokenizer_config.json";
  if (owner == TemplateOwner::kProcessor && std::filesystem::exists(legacy)) {
    ojson j = read_json(legacy);
    if (!j.is_object() || !j.contains("chat_template")) {
      throw InputError("chat template: " + legacy.string() + " has no \"chat_template\" key");
    }
    return {template_value(j["chat_template"], legacy), legacy};
  }
  if (std::filesystem::exists(raw)) return {read_text(raw), raw};
  if (std::filesystem::exists(config)) {
    ojson j = read_json(config);
    if (j.is_object() && j.contains("chat_template") && !j["chat_template"].is_null()) {
      return {template_value(j["chat_template"], config), config};
    }
  }
  std::string tried = owner == TemplateOwner::kProcessor
                          ? "chat_template.json, chat_template.jinja, tokenizer_config.json"
                          : "chat_template.jinja, tokenizer_config.json";
  throw InputError("chat template: " + dir.string() + " has no chat template (looked in " + tried +
                   ")");
}

ojson special_tokens_from_config(const ojson& cfg) {
  ojson out = ojson::object();
  if (!cfg.is_object()) return out;
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                          "cls_token", "mask_token"}) {
    if (!cfg.contains(key)) continue;
    const ojson& v = cfg[key];
    if (v.is_string()) {
      out[key] = v;
    } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
      out[key] = v["content"];
    }
  }
  return out;
}

}  // namespace omni::jinja
