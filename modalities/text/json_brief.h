// A short, bounded rendering of a JSON value for error messages: nesting beyond three levels and
// text beyond ~120 characters are elided, so a hostile file (a value nested a million deep, a
// megabyte string) neither overflows the stack nor floods the message.
#pragma once

#include <string>

namespace omni::text {

template <class Json>
void append_json_brief(const Json& v, std::string& out, int depth = 0) {
  constexpr size_t kMax = 120;
  if (out.size() > kMax) return;
  if (v.is_object() || v.is_array()) {
    const bool obj = v.is_object();
    if (depth >= 3) {
      out += obj ? "{...}" : "[...]";
      return;
    }
    out += obj ? '{' : '[';
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) out += ", ";
      first = false;
      if (out.size() > kMax) {
        out += "...";
        break;
      }
      if (obj) out += Json(it.key()).dump() + ": ";
      append_json_brief(it.value(), out, depth + 1);
    }
    out += obj ? '}' : ']';
    return;
  }
  const std::string s = v.dump();
  out += s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

template <class Json>
std::string json_brief(const Json& v) {
  std::string out;
  append_json_brief(v, out);
  return out;
}

}  // namespace omni::text
