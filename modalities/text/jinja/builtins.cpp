// Attribute and item access, slicing, arithmetic and the str/list/dict methods templates call.
//
// Methods (as Python's): str: startswith endswith strip lstrip rstrip split rsplit splitlines
// upper lower title capitalize replace find rfind count index join removeprefix removesuffix
// isdigit isalpha isalnum isspace isupper islower; dict: items keys values get; list: index count.
// Modifying methods (list.append, dict.update, ...) are unsafe in ImmutableSandboxedEnvironment:
// they are Undefined that fails when used. Any other real method of these types is an error.
#include <algorithm>
#include <cmath>
#include <set>

#include "modalities/text/jinja/internal.h"

namespace omni::jinja::detail {

void fail_undefined(const Value& u) { fail(u.s.empty() ? "value is undefined" : u.s); }

namespace {

// Characters without case (CJK, Hangul, kana, emoji and symbols): case methods leave them alone.
// Other non-ASCII characters are refused by the case methods rather than guessed.
void check_caseless(const std::string& ch, const char* what) {
  std::uint32_t cp = cp_of(ch);
  if (cp < 0x80) return;
  bool caseless = (cp >= 0x2000 && cp <= 0x206F) || (cp >= 0x3000 && cp <= 0xA63F) ||
                  (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
                  (cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x20000 && cp <= 0x3FFFF);
  if (!caseless) {
    fail(std::string("str.") + what + "() of non-ASCII letters is not supported");
  }
}

std::string ascii_case(const std::string& s, int mode, const char* what) {
  // mode 0 lower, 1 upper, 2 title, 3 capitalize
  std::string out;
  bool prev_cased = false;
  bool first = true;
  for (const std::string& ch : utf8_chars(s)) {
    check_caseless(ch, what);
    if (ch.size() > 1) {
      out += ch;
      prev_cased = false;
      first = false;
      continue;
    }
    char c = ch[0];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    bool up = false;
    if (mode == 1) up = true;
    if (mode == 2) up = !prev_cased;
    if (mode == 3) up = first;
    if (alpha) c = up ? static_cast<char>(std::toupper(c)) : static_cast<char>(std::tolower(c));
    out += c;
    prev_cased = alpha;
    first = false;
  }
  return out;
}

std::int64_t as_index(const Value& v, const char* what) {
  if (v.kind == Kind::Int) return v.i;
  if (v.kind == Kind::Bool) return v.b;
  fail(std::string(what) + " indices must be integers, not " + type_name(v));
}

Value str_split(const std::string& s, const Value& sep, std::int64_t maxsplit, bool from_right) {
  std::vector<Value> parts;
  if (sep.kind == Kind::None || sep.is_undefined()) {
    // whitespace split: runs of whitespace, no empty strings
    std::vector<std::string> cs = utf8_chars(s);
    std::vector<std::pair<std::size_t, std::size_t>> words;  // char index ranges
    std::size_t i = 0;
    while (i < cs.size()) {
      while (i < cs.size() && is_py_space(cp_of(cs[i]))) ++i;
      if (i >= cs.size()) break;
      std::size_t b = i;
      while (i < cs.size() && !is_py_space(cp_of(cs[i]))) ++i;
      words.emplace_back(b, i);
    }
    auto join = [&](std::size_t b, std::size_t e) {
      std::string r;
      for (std::size_t k = b; k < e; ++k) r += cs[k];
      return r;
    };
    if (maxsplit < 0 || static_cast<std::size_t>(maxsplit) >= words.size()) {
      for (auto [b, e] : words) parts.push_back(Value::str(join(b, e)));
    } else if (!from_right) {
      for (std::int64_t k = 0; k < maxsplit; ++k) {
        parts.push_back(Value::str(join(words[k].first, words[k].second)));
      }
      // the remainder keeps its trailing whitespace, as Python's does
      parts.push_back(Value::str(join(words[maxsplit].first, cs.size())));
    } else {
      std::size_t n = words.size();
      std::size_t keep = n - static_cast<std::size_t>(maxsplit);
      std::size_t b = 0;  // the head keeps its leading whitespace
      parts.push_back(Value::str(join(b, words[keep - 1].second)));
      for (std::size_t k = keep; k < n; ++k) {
        parts.push_back(Value::str(join(words[k].first, words[k].second)));
      }
    }
    return Value::make_list(std::move(parts));
  }
  if (sep.kind != Kind::Str) fail("must be str or None, not " + type_name(sep));
  if (sep.s.empty()) fail("empty separator");
  std::vector<std::string> pieces;
  std::size_t start = 0;
  while (true) {
    std::size_t p = s.find(sep.s, start);
    if (p == std::string::npos) break;
    pieces.push_back(s.substr(start, p - start));
    start = p + sep.s.size();
  }
  pieces.push_back(s.substr(start));
  if (maxsplit >= 0 && pieces.size() > static_cast<std::size_t>(maxsplit) + 1) {
    std::size_t m = static_cast<std::size_t>(maxsplit);
    std::vector<std::string> merged;
    if (!from_right) {
      for (std::size_t k = 0; k < m; ++k) merged.push_back(pieces[k]);
      std::string rest = pieces[m];
      for (std::size_t k = m + 1; k < pieces.size(); ++k) rest += sep.s + pieces[k];
      merged.push_back(rest);
    } else {
      std::size_t keep = pieces.size() - m;
      std::string head = pieces[0];
      for (std::size_t k = 1; k < keep; ++k) head += sep.s + pieces[k];
      merged.push_back(head);
      for (std::size_t k = keep; k < pieces.size(); ++k) merged.push_back(pieces[k]);
    }
    pieces = std::move(merged);
  }
  for (auto& p : pieces) parts.push_back(Value::str(std::move(p)));
  return Value::make_list(std::move(parts));
}

std::int64_t char_index(const std::string& s, std::size_t byte_pos) {
  std::int64_t n = 0;
  for (std::size_t i = 0; i < byte_pos; ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++n;
  }
  return n;
}

const std::string& str_arg(const Value& v, const char* what) {
  if (v.kind != Kind::Str) fail(std::string(what) + " argument must be str, not " + type_name(v));
  return v.s;
}

bool affix_match(const std::string& s, const Value& arg, bool prefix, const char* what) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0
                  : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (arg.kind == Kind::List && arg.list->tuple) {
    for (const auto& x : arg.list->items) {
      if (one(str_arg(x, what))) return true;
    }
    return false;
  }
  if (arg.kind != Kind::Str) {
    fail(std::string(what) + " first arg must be str or a tuple of str, not " + type_name(arg));
  }
  return one(arg.s);
}

Value str_method(const std::string& s, const std::string& name) {
  auto m = [&](auto fn) {
    return Value::callable("str." + name, [s, name, fn](CallArgs& a) { return fn(s, a); });
  };
  if (name == "startswith" || name == "endswith") {
    bool prefix = name == "startswith";
    return m([prefix, name](const std::string& str, CallArgs& a) {
      a.check_max(1, {}, name);
      if (a.pos.empty()) fail(name + "() takes at least 1 argument");
      return Value::boolean(affix_match(str, a.pos[0], prefix, name.c_str()));
    });
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool l = name != "rstrip", r = name != "lstrip";
    return m([l, r, name](const std::string& str, CallArgs& a) {
      a.check_max(1, {}, name);
      Value chars = a.get_or(0, "", Value::none());
      if (chars.kind == Kind::None) return Value::str(py_strip(str, l, r, nullptr));
      return Value::str(py_strip(str, l, r, &str_arg(chars, name.c_str())));
    });
  }
  if (name == "split" || name == "rsplit") {
    bool right = name == "rsplit";
    return m([right, name](const std::string& str, CallArgs& a) {
      a.check_max(2, {"sep", "maxsplit"}, name);
      Value sep = a.get_or(0, "sep", Value::none());
      Value ms = a.get_or(1, "maxsplit", Value::integer(-1));
      return str_split(str, sep, as_index(ms, "maxsplit"), right);
    });
  }
  if (name == "splitlines") {
    return m([](const std::string& str, CallArgs& a) {
      a.check_max(1, {"keepends"}, "splitlines");
      bool keep = truthy(a.get_or(0, "keepends", Value::boolean(false)));
      std::vector<Value> lines;
      std::vector<std::string> cs = utf8_chars(str);
      std::string cur;
      for (std::size_t i = 0; i < cs.size(); ++i) {
        std::uint32_t cp = cp_of(cs[i]);
        bool brk = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C ||
                   (cp >= 0x1C && cp <= 0x1E) || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        if (!brk) {
          cur += cs[i];
          continue;
        }
        std::string end = cs[i];
        if (cp == '\r' && i + 1 < cs.size() && cs[i + 1] == "\n") {
          end += "\n";
          ++i;
        }
        lines.push_back(Value::str(keep ? cur + end : cur));
        cur.clear();
      }
      if (!cur.empty()) lines.push_back(Value::str(cur));
      return Value::make_list(std::move(lines));
    });
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    int mode = name == "lower" ? 0 : name == "upper" ? 1 : name == "title" ? 2 : 3;
    return m([mode, name](const std::string& str, CallArgs& a) {
      a.check_max(0, {}, name);
      return Value::str(ascii_case(str, mode, name.c_str()));
    });
  }
  if (name == "replace") {
    return m([](const std::string& str, CallArgs& a) {
      a.check_max(3, {"count"}, "replace");
      const Value* o = a.get(0, "old");
      const Value* n = a.get(1, "new");
      if (!o || !n) fail("replace() takes at least 2 arguments");
      std::int64_t count = as_index(a.get_or(2, "count", Value::integer(-1)), "count");
      return Value::str([&] {
        const std::string& old = str_arg(*o, "replace()");
        const std::string& nw = str_arg(*n, "replace()");
        std::string out;
        std::int64_t done = 0;
        if (old.empty()) {
          std::vector<std::string> cs = utf8_chars(str);
          for (std::size_t i = 0; i <= cs.size(); ++i) {
            if (count < 0 || done < count) {
              out += nw;
              ++done;
            }
            if (i < cs.size()) out += cs[i];
            check_size(out.size());
          }
          return out;
        }
        std::size_t start = 0;
        while (count < 0 || done < count) {
          std::size_t p = str.find(old, start);
          if (p == std::string::npos) break;
          out += str.substr(start, p - start) + nw;
          check_size(out.size());
          start = p + old.size();
          ++done;
        }
        out += str.substr(start);
        check_size(out.size());
        return out;
      }());
    });
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    return m([name](const std::string& str, CallArgs& a) {
      a.check_max(1, {}, name);
      if (a.pos.empty()) fail(name + "() takes at least 1 argument");
      const std::string& sub = str_arg(a.pos[0], name.c_str());
      if (name == "count") {
        if (sub.empty()) return Value::integer(py_len(Value::str(str)) + 1);
        std::int64_t n = 0;
        for (std::size_t p = str.find(sub); p != std::string::npos;
             p = str.find(sub, p + sub.size())) {
          ++n;
        }
        return Value::integer(n);
      }
      std::size_t p = name[0] == 'r' ? str.rfind(sub) : str.find(sub);
      if (p == std::string::npos) {
        if (name == "index" || name == "rindex") fail("substring not found");
        return Value::integer(-1);
      }
      return Value::integer(char_index(str, p));
    });
  }
  if (name == "join") {
    return m([](const std::string& str, CallArgs& a) {
      a.check_max(1, {}, "join");
      if (a.pos.empty()) fail("join() takes exactly one argument");
      std::string out;
      bool first = true;
      for (const Value& x : iterate(a.pos[0])) {
        if (x.kind != Kind::Str)
          fail("sequence item: expected str instance, " + type_name(x) + " found");
        if (!first) out += str;
        first = false;
        out += x.s;
        check_size(out.size());
      }
      return Value::str(out);
    });
  }
  if (name == "removeprefix" || name == "removesuffix") {
    bool prefix = name == "removeprefix";
    return m([prefix, name](const std::string& str, CallArgs& a) {
      a.check_max(1, {}, name);
      if (a.pos.empty()) fail(name + "() takes exactly one argument");
      const std::string& x = str_arg(a.pos[0], name.c_str());
      if (affix_match(str, a.pos[0], prefix, name.c_str())) {
        return Value::str(prefix ? str.substr(x.size()) : str.substr(0, str.size() - x.size()));
      }
      return Value::str(str);
    });
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" ||
      name == "isupper" || name == "islower") {
    return m([name](const std::string& str, CallArgs& a) {
      a.check_max(0, {}, name);
      std::vector<std::string> cs = utf8_chars(str);
      if (name == "isspace") {
        bool all = !cs.empty();
        for (const auto& ch : cs) all = all && is_py_space(cp_of(ch));
        return Value::boolean(all);
      }
      bool any_cased = false, all = !cs.empty();
      for (const auto& ch : cs) {
        if (ch.size() > 1) fail("str." + name + "() of non-ASCII text is not supported");
        char c = ch[0];
        bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z',
             digit = c >= '0' && c <= '9';
        if (name == "isdigit") all = all && digit;
        if (name == "isalpha") all = all && (lower || upper);
        if (name == "isalnum") all = all && (lower || upper || digit);
        if (name == "isupper") {
          if (lower) all = false;
          any_cased = any_cased || upper;
        }
        if (name == "islower") {
          if (upper) all = false;
          any_cased = any_cased || lower;
        }
      }
      if (name == "isupper" || name == "islower") return Value::boolean(any_cased && all);
      return Value::boolean(all);
    });
  }
  static const std::set<std::string> other = {
      "casefold",    "center",     "encode",    "expandtabs",   "format",
      "format_map",  "isascii",    "isdecimal", "isidentifier", "isnumeric",
      "isprintable", "istitle",    "ljust",     "maketrans",    "partition",
      "rjust",       "rpartition", "swapcase",  "translate",    "zfill"};
  if (other.count(name)) fail("str." + name + "() is not supported");
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value dict_method(const DictP& d, const std::string& name) {
  if (name == "items" || name == "keys" || name == "values") {
    return Value::callable("dict." + name, [d, name](CallArgs& a) {
      a.check_max(0, {}, name);
      std::vector<Value> out;
      out.reserve(d->items.size());
      for (const auto& [k, v] : d->items) {
        if (name == "items") out.push_back(Value::make_list({k, v}, true));
        if (name == "keys") out.push_back(k);
        if (name == "values") out.push_back(v);
      }
      Value r = Value::make_list(std::move(out));
      const_cast<List&>(*r.list).view = "dict_" + name;
      return r;
    });
  }
  if (name == "get") {
    return Value::callable("dict.get", [d](CallArgs& a) {
      a.check_max(2, {}, "get");
      if (a.pos.empty()) fail("get expected at least 1 argument, got 0");
      const Value* v = d->find(a.pos[0]);
      if (v) return *v;
      return a.pos.size() > 1 ? a.pos[1] : Value::none();
    });
  }
  static const std::set<std::string> unsafe = {"clear", "pop", "popitem", "setdefault", "update"};
  if (unsafe.count(name)) {
    return Value::undefined("access to attribute '" + name + "' of 'dict' object is unsafe.");
  }
  if (name == "copy" || name == "fromkeys") fail("dict." + name + "() is not supported");
  return Value();  // not a dict attribute
}

Value list_method(const ListP& l, const std::string& name) {
  const char* tname = l->tuple ? "tuple" : "list";
  if (name == "index" || name == "count") {
    return Value::callable(std::string(tname) + "." + name, [l, name](CallArgs& a) {
      a.check_max(1, {}, name);
      if (a.pos.empty()) fail(name + "() takes exactly one argument");
      std::int64_t n = 0;
      for (std::size_t i = 0; i < l->items.size(); ++i) {
        if (py_eq(l->items[i], a.pos[0])) {
          if (name == "index") return Value::integer(static_cast<std::int64_t>(i));
          ++n;
        }
      }
      if (name == "index") fail("value is not in list");
      return Value::integer(n);
    });
  }
  if (!l->tuple) {
    static const std::set<std::string> unsafe = {"append", "clear", "pop",    "reverse",
                                                 "insert", "sort",  "extend", "remove"};
    if (unsafe.count(name)) {
      return Value::undefined("access to attribute '" + name + "' of 'list' object is unsafe.");
    }
    if (name == "copy") fail("list.copy() is not supported");
  }
  return Value::undefined(std::string("'") + tname + " object' has no attribute '" + name + "'");
}

}  // namespace

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.markup) fail("methods of a |safe (Markup) string are not supported");
  if (!name.empty() && name[0] == '_') {
    if (obj.is_undefined()) fail_undefined(obj);
    return Value::undefined("access to attribute '" + name + "' of '" + type_name(obj) +
                            "' object is unsafe.");
  }
  switch (obj.kind) {
    case Kind::Undefined:
      fail_undefined(obj);
    case Kind::Dict: {
      Value m = dict_method(obj.dict, name);
      if (m.kind != Kind::Undefined || !m.s.empty()) return m;
      if (const Value* v = obj.dict->find(Value::str(name))) return *v;
      return Value::undefined("'dict object' has no attribute '" + name + "'");
    }
    case Kind::Str:
      return str_method(obj.s, name);
    case Kind::List:
      return list_method(obj.list, name);
    case Kind::Object:
      return obj.obj->getattr(name);
    case Kind::Int:
    case Kind::Bool:
    case Kind::Float: {
      static const std::set<std::string> num_attrs = {
          "as_integer_ratio", "bit_count", "bit_length", "conjugate", "denominator",
          "from_bytes",       "imag",      "numerator",  "real",      "to_bytes",
          "is_integer",       "hex",       "fromhex"};
      if (num_attrs.count(name)) fail("attribute '" + name + "' of numbers is not supported");
      return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + name + "'");
    }
    default:
      return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + name + "'");
  }
}

Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  auto opt = [](const Value& v, const char* what) -> std::optional<std::int64_t> {
    if (v.kind == Kind::None || v.is_undefined()) return std::nullopt;
    if (v.kind != Kind::Int && v.kind != Kind::Bool) {
      fail(std::string("slice ") + what + " must be an integer or None");
    }
    return v.kind == Kind::Bool ? v.b : v.i;
  };
  if (obj.markup) fail("slicing a |safe (Markup) string is not supported");
  std::int64_t st = opt(step, "step").value_or(1);
  if (st == 0) fail("slice step cannot be zero");
  std::vector<std::string> chars;
  const std::vector<Value>* items = nullptr;
  std::int64_t n = 0;
  if (obj.kind == Kind::Str) {
    chars = utf8_chars(obj.s);
    n = static_cast<std::int64_t>(chars.size());
  } else if (obj.kind == Kind::List) {
    if (!obj.list->view.empty()) fail("slicing a " + obj.list->view + " object is not supported");
    items = &obj.list->items;
    n = static_cast<std::int64_t>(items->size());
  } else {
    fail("'" + type_name(obj) + "' object is not subscriptable");
  }
  auto adjust = [&](std::optional<std::int64_t> v, std::int64_t def) {
    if (!v) return def;
    std::int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= n) {
      x = st < 0 ? n - 1 : n;
    }
    return x;
  };
  std::int64_t b = adjust(opt(start, "start"), st < 0 ? n - 1 : 0);
  std::int64_t e = adjust(opt(stop, "stop"), st < 0 ? -1 : n);
  std::string s;
  std::vector<Value> out;
  for (std::int64_t i = b; st > 0 ? i < e : i > e; i += st) {
    if (items) {
      out.push_back((*items)[static_cast<std::size_t>(i)]);
    } else {
      s += chars[static_cast<std::size_t>(i)];
    }
  }
  if (items) return Value::make_list(std::move(out), obj.list->tuple);
  return Value::str(std::move(s));
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.markup) fail("indexing a |safe (Markup) string is not supported");
  auto fallback = [&]() -> Value {
    if (key.kind == Kind::Str) return get_attr(obj, key.s);
    std::string hint = "'";
    hint += type_name(obj);
    hint += " object' has no element ";
    hint += key.is_undefined() ? std::string("Undefined") : repr(key);
    return Value::undefined(std::move(hint));
  };
  switch (obj.kind) {
    case Kind::Dict: {
      bool hashable = key.kind != Kind::List || key.list->tuple;
      if (hashable && key.kind != Kind::Dict && key.kind != Kind::Object &&
          key.kind != Kind::Callable && !key.is_undefined()) {
        if (const Value* v = obj.dict->find(key)) return *v;
      }
      if (key.kind == Kind::Str) {
        Value m = dict_method(obj.dict, key.s);
        if (m.kind != Kind::Undefined || !m.s.empty()) return m;
        return Value::undefined("'dict object' has no attribute '" + key.s + "'");
      }
      return Value::undefined("'dict object' has no element " +
                              (key.is_undefined() ? std::string("Undefined") : repr(key)));
    }
    case Kind::List:
    case Kind::Str: {
      if (obj.kind == Kind::List && !obj.list->view.empty() && obj.list->view != "range") {
        return Value::undefined("'" + obj.list->view + "' object is not subscriptable");
      }
      if (key.kind != Kind::Int && key.kind != Kind::Bool) return fallback();
      std::int64_t i = key.kind == Kind::Bool ? key.b : key.i;
      if (obj.kind == Kind::List) {
        auto n = static_cast<std::int64_t>(obj.list->items.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) {
          return Value::undefined("'" + type_name(obj) + " object' has no element " + to_str(key));
        }
        return obj.list->items[static_cast<std::size_t>(i)];
      }
      std::vector<std::string> cs = utf8_chars(obj.s);
      auto n = static_cast<std::int64_t>(cs.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined("'str object' has no element " + to_str(key));
      return Value::str(cs[static_cast<std::size_t>(i)]);
    }
    case Kind::Object:
      if (obj.obj->is_namespace()) fail("subscripting a namespace is not supported");
      return fallback();
    default:
      return fallback();
  }
}

Value call_value(const Value& fn, CallArgs& args) {
  if (fn.is_undefined()) fail_undefined(fn);
  if (fn.kind != Kind::Callable) fail("'" + type_name(fn) + "' object is not callable");
  return fn.fn->fn(args);
}

// ---- arithmetic ------------------------------------------------------------------------------
namespace {
bool int_like(const Value& v) { return v.kind == Kind::Int || v.kind == Kind::Bool; }
std::int64_t ival(const Value& v) { return v.kind == Kind::Bool ? v.b : v.i; }
double fval(const Value& v) { return v.kind == Kind::Float ? v.f : static_cast<double>(ival(v)); }

[[noreturn]] void bad_operands(const std::string& op, const Value& a, const Value& b) {
  if (op == "+" && a.kind == Kind::Str) {
    fail("can only concatenate str (not \"" + type_name(b) + "\") to str");
  }
  if (op == "+" && a.kind == Kind::List) {
    fail("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " +
         type_name(a));
  }
  fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) +
       "'");
}

Value repeat(const Value& seq, std::int64_t n) {
  if (n < 0) n = 0;
  std::size_t total = 0;
  std::size_t unit = seq.kind == Kind::Str ? seq.s.size() : seq.list->items.size();
  if (__builtin_mul_overflow(unit, static_cast<std::size_t>(n), &total)) check_size(SIZE_MAX);
  check_size(total);
  // An empty sequence repeated is empty at once: '' * 2^63 must not loop 2^63 times (found by
  // fuzz_chat_template: the output cap never tripped, the render ran for ever).
  if (unit == 0) n = 0;
  if (seq.kind == Kind::Str) {
    std::string out;
    for (std::int64_t k = 0; k < n; ++k) out += seq.s;
    return Value::str(std::move(out));
  }

  std::vector<Value> out;
  for (std::int64_t k = 0; k < n; ++k) {
    out.insert(out.end(), seq.list->items.begin(), seq.list->items.end());
  }
  return Value::make_list(std::move(out), seq.list->tuple);
}

void float_divmod(double vx, double wx, double& floordiv, double& mod) {
  // CPython's float_divmod
  if (wx == 0.0) fail("float division by zero");
  mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
}
}  // namespace

Value arith(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.markup || b.markup) {
    // markupsafe: Markup + str escapes the str (and str + Markup likewise); the result is Markup
    if (op == "+" && a.kind == Kind::Str && b.kind == Kind::Str) {
      auto esc = [](const Value& x) {
        if (x.markup) return x.s;
        std::string o;
        for (char c : x.s) {
          switch (c) {
            case '&':
              o += "&amp;";
              break;
            case '<':
              o += "&lt;";
              break;
            case '>':
              o += "&gt;";
              break;
            case '\'':
              o += "&#39;";
              break;
            case '"':
              o += "&#34;";
              break;
            default:
              o += c;
          }
        }
        return o;
      };
      std::string l = esc(a), r = esc(b);
      check_size(l.size() + r.size());
      Value out = Value::str(l + r);
      out.markup = true;
      return out;
    }
    fail("'" + op + "' with a |safe (Markup) string is not supported");
  }
  bool nums = a.is_number() && b.is_number();
  bool ints = int_like(a) && int_like(b);
  if (op == "+") {
    if (ints) {
      std::int64_t r;
      if (__builtin_add_overflow(ival(a), ival(b), &r)) fail("integer overflow");
      return Value::integer(r);
    }
    if (nums) return Value::real(fval(a) + fval(b));
    if (a.kind == Kind::Str && b.kind == Kind::Str) {
      check_size(a.s.size() + b.s.size());
      return Value::str(a.s + b.s);
    }
    if (a.kind == Kind::List && b.kind == Kind::List && a.list->tuple == b.list->tuple &&
        a.list->view.empty() && b.list->view.empty()) {
      check_size(a.list->items.size() + b.list->items.size());
      std::vector<Value> out = a.list->items;
      out.insert(out.end(), b.list->items.begin(), b.list->items.end());
      return Value::make_list(std::move(out), a.list->tuple);
    }
    bad_operands(op, a, b);
  }
  if (op == "-") {
    if (ints) {
      std::int64_t r;
      if (__builtin_sub_overflow(ival(a), ival(b), &r)) fail("integer overflow");
      return Value::integer(r);
    }
    if (nums) return Value::real(fval(a) - fval(b));
    bad_operands(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      std::int64_t r;
      if (__builtin_mul_overflow(ival(a), ival(b), &r)) fail("integer overflow");
      return Value::integer(r);
    }
    if (nums) return Value::real(fval(a) * fval(b));
    if ((a.kind == Kind::Str || (a.kind == Kind::List && a.list->view.empty())) && int_like(b)) {
      return repeat(a, ival(b));
    }
    if ((b.kind == Kind::Str || (b.kind == Kind::List && b.list->view.empty())) && int_like(a)) {
      return repeat(b, ival(a));
    }
    bad_operands(op, a, b);
  }
  if (op == "/") {
    if (!nums) bad_operands(op, a, b);
    if (fval(b) == 0.0) fail("division by zero");
    return Value::real(fval(a) / fval(b));
  }
  if (op == "//" || op == "%") {
    if (a.kind == Kind::Str && op == "%") fail("string formatting with % is not supported");
    if (!nums) bad_operands(op, a, b);
    if (ints) {
      std::int64_t x = ival(a), y = ival(b);
      if (y == 0) fail(op == "%" ? "integer modulo by zero" : "integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) fail("integer overflow");
      std::int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return Value::integer(op == "%" ? r : q);
    }
    double fd = 0, md = 0;
    float_divmod(fval(a), fval(b), fd, md);
    return Value::real(op == "%" ? md : fd);
  }
  if (op == "**") {
    if (!nums) bad_operands(op, a, b);
    if (ints && ival(b) >= 0) {
      std::int64_t base = ival(a), e = ival(b), r = 1;
      while (e > 0) {
        if (e & 1) {
          if (__builtin_mul_overflow(r, base, &r)) fail("integer overflow");
        }
        e >>= 1;
        if (e > 0 && __builtin_mul_overflow(base, base, &base)) fail("integer overflow");
      }
      return Value::integer(r);
    }
    if (fval(a) == 0.0 && fval(b) < 0) fail("0.0 cannot be raised to a negative power");
    double r = std::pow(fval(a), fval(b));
    if (std::isnan(r) && !std::isnan(fval(a)) && !std::isnan(fval(b))) {
      fail("negative number cannot be raised to a fractional power (complex result)");
    }
    return Value::real(r);
  }
  fail("unknown operator " + op);
}

}  // namespace omni::jinja::detail
