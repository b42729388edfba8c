// Values and their Python semantics: str(), repr(), ==, <, in, len(), iteration, json.dumps.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "modalities/text/jinja/internal.h"

namespace omni::jinja::detail {

void fail(std::string message) { throw Fail{std::move(message)}; }

std::size_t& max_string_bytes() {
  thread_local std::size_t limit = Limits{}.max_output_bytes;
  return limit;
}

void check_size(std::size_t n) {
  if (n > max_string_bytes()) {
    fail("a string or list built while rendering exceeds the limit of " +
         std::to_string(max_string_bytes()) + " bytes");
  }
}

// ---- construction ----------------------------------------------------------------------------
Value Value::undefined(std::string hint) {
  Value v;
  v.kind = Kind::Undefined;
  v.s = std::move(hint);
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::None;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.kind = Kind::Bool;
  v.b = x;
  return v;
}
Value Value::integer(std::int64_t x) {
  Value v;
  v.kind = Kind::Int;
  v.i = x;
  return v;
}
Value Value::real(double x) {
  Value v;
  v.kind = Kind::Float;
  v.f = x;
  return v;
}
Value Value::str(std::string x) {
  Value v;
  v.kind = Kind::Str;
  v.s = std::move(x);
  return v;
}
Value Value::make_list(std::vector<Value> items, bool tuple) {
  auto l = std::make_shared<List>();
  l->items = std::move(items);
  l->tuple = tuple;
  Value v;
  v.kind = Kind::List;
  v.list = std::move(l);
  return v;
}
Value make_iterator(std::vector<Value> items, const char* view) {
  Value v = Value::make_list(std::move(items));
  const_cast<List&>(*v.list).view = view;
  return v;
}

Value Value::make_dict(std::shared_ptr<Dict> d) {
  Value v;
  v.kind = Kind::Dict;
  v.dict = std::move(d);
  return v;
}
Value Value::object(ObjectP o) {
  Value v;
  v.kind = Kind::Object;
  v.obj = std::move(o);
  return v;
}
Value Value::callable(std::string name, std::function<Value(CallArgs&)> fn) {
  auto c = std::make_shared<Callable>();
  c->name = std::move(name);
  c->fn = std::move(fn);
  Value v;
  v.kind = Kind::Callable;
  v.fn = std::move(c);
  return v;
}

// ---- dict ------------------------------------------------------------------------------------
namespace {
void check_hashable(const Value& k) {
  switch (k.kind) {
    case Kind::None:
    case Kind::Bool:
    case Kind::Int:
    case Kind::Float:
    case Kind::Str:
      return;
    case Kind::List:
      if (k.list->tuple) {
        for (const auto& x : k.list->items) check_hashable(x);
        return;
      }
      break;
    default:
      break;
  }
  fail("unhashable type: '" + type_name(k) + "'");
}
}  // namespace

const Value* Dict::find(const Value& key) const {
  if (key.kind == Kind::Str) {
    auto it = str_index.find(key.s);
    return it == str_index.end() ? nullptr : &items[it->second].second;
  }
  check_hashable(key);
  for (const auto& [k, v] : items) {
    if (k.kind != Kind::Str && py_eq(k, key)) return &v;
  }
  return nullptr;
}

void Dict::set(Value key, Value value) {
  if (key.kind == Kind::Str) {
    auto it = str_index.find(key.s);
    if (it != str_index.end()) {
      items[it->second].second = std::move(value);
      return;
    }
    str_index.emplace(key.s, items.size());
    items.emplace_back(std::move(key), std::move(value));
    return;
  }
  check_hashable(key);
  for (auto& [k, v] : items) {
    if (k.kind != Kind::Str && py_eq(k, key)) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

// ---- objects ---------------------------------------------------------------------------------
void Object::setattr(const std::string& name, Value) {
  fail("cannot assign attribute '" + name + "' on a " + type_name() + " object");
}

Value Namespace::getattr(const std::string& name) const {
  if (const Value* v = attrs->find(Value::str(name))) return *v;
  return Value::undefined("'Namespace' object has no attribute '" + name + "'");
}

void Namespace::setattr(const std::string& name, Value v) {
  if (!name.empty() && name[0] == '_') {
    fail("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
         name + "'");
  }
  attrs->set(Value::str(name), std::move(v));
}

std::string Namespace::repr() const {
  Value d = Value::make_dict(attrs);
  return "<Namespace " + detail::repr(d) + ">";
}

// ---- call arguments --------------------------------------------------------------------------
const Value* CallArgs::get(std::size_t index, const std::string& name) const {
  const Value* found = index < pos.size() ? &pos[index] : nullptr;
  for (const auto& [k, v] : kw) {
    if (k == name) {
      if (found) fail("got multiple values for argument '" + name + "'");
      found = &v;
    }
  }
  return found;
}

Value CallArgs::get_or(std::size_t index, const std::string& name, Value def) const {
  const Value* v = get(index, name);
  return v ? *v : std::move(def);
}

void CallArgs::check_max(std::size_t n_pos, std::initializer_list<const char*> names,
                         const std::string& what) const {
  if (pos.size() > n_pos) {
    fail(what + "() takes at most " + std::to_string(n_pos) + " positional arguments (" +
         std::to_string(pos.size()) + " given)");
  }
  for (const auto& [k, v] : kw) {
    bool ok = false;
    for (const char* n : names) ok = ok || k == n;
    if (!ok) fail(what + "() got an unexpected keyword argument '" + k + "'");
  }
}

// ---- truth, str, repr ------------------------------------------------------------------------
bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return v.b;
    case Kind::Int:
      return v.i != 0;
    case Kind::Float:
      return v.f != 0.0;
    case Kind::Str:
      return !v.s.empty();
    case Kind::List:
      return v.list->is_iterator() || !v.list->items.empty();
    case Kind::Dict:
      return !v.dict->items.empty();
    case Kind::Object:
    case Kind::Callable:
      return true;
  }
  return false;
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::None:
      return "NoneType";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::Str:
      return "str";
    case Kind::List:
      if (!v.list->view.empty()) return v.list->view;
      return v.list->tuple ? "tuple" : "list";
    case Kind::Dict:
      return "dict";
    case Kind::Object:
      return v.obj->type_name();
    case Kind::Callable:
      return "function";
  }
  return "object";
}

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0.0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // [-]d[.ddd]e[+-]XX
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  std::size_t epos = sci.find('e');
  int exp = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (std::size_t i = 0; i < epos; ++i) {
    if (sci[i] != '.') digits += sci[i];
  }
  int decpt = exp + 1;
  std::string out;
  if (decpt <= -4 || decpt > 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  } else if (decpt <= 0) {
    out = "0." + std::string(static_cast<std::size_t>(-decpt), '0') + digits;
  } else if (static_cast<std::size_t>(decpt) >= digits.size()) {
    out = digits + std::string(static_cast<std::size_t>(decpt) - digits.size(), '0') + ".0";
  } else {
    out = digits.substr(0, static_cast<std::size_t>(decpt)) + "." +
          digits.substr(static_cast<std::size_t>(decpt));
  }
  return neg ? "-" + out : out;
}

std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    len = std::min(len, s.size() - i);
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

std::uint32_t cp_of(const std::string& ch) {
  auto c = static_cast<unsigned char>(ch[0]);
  if (ch.size() == 1) return c;
  std::uint32_t cp = c & (0x3F >> (ch.size() - 1));
  for (std::size_t k = 1; k < ch.size(); ++k) cp = (cp << 6) | (ch[k] & 0x3F);
  return cp;
}

namespace {

// Code points that Python's str.isprintable() accepts and that we are sure of; repr() of any
// other non-ASCII character is refused rather than guessed.
bool surely_printable(std::uint32_t cp) {
  return (cp >= 0xA1 && cp <= 0x24F && cp != 0xAD) || (cp >= 0x400 && cp <= 0x4FF) ||
         (cp >= 0x3041 && cp <= 0x3096) || (cp >= 0x30A1 && cp <= 0x30FA) ||
         (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
         (cp >= 0x1F300 && cp <= 0x1F64F);
}

std::string str_repr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char q = has_single && !has_double ? '"' : '\'';
  std::string out(1, q);
  for (const std::string& ch : utf8_chars(s)) {
    std::uint32_t cp = cp_of(ch);
    char buf[16];
    if (cp == '\\') {
      out += "\\\\";
    } else if (cp == static_cast<std::uint32_t>(q)) {
      out += '\\';
      out += q;
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD) {
      std::snprintf(buf, sizeof(buf), "\\x%02x", cp);
      out += buf;
    } else if (cp < 0x80 || surely_printable(cp)) {
      out += ch;
    } else {
      fail("cannot reproduce Python's repr() of a string with the character U+" + [&] {
        std::snprintf(buf, sizeof(buf), "%04X", cp);
        return std::string(buf);
      }() + " (print it with |tojson or as a plain string instead)");
    }
  }
  out += q;
  return out;
}
}  // namespace

std::string repr(const Value& v) {
  // A namespace can hold itself; Python prints such cycles as {...}, we refuse them.
  thread_local int depth = 0;
  struct Guard {
    Guard() {
      if (++depth > 200) {
        --depth;
        fail("cannot print a value nested more than 200 levels deep (or holding itself)");
      }
    }
    ~Guard() { --depth; }
  } guard;
  switch (v.kind) {
    case Kind::Str:
      return str_repr(v.s);
    case Kind::List: {
      if (v.list->view == "range") return v.list->range_repr;
      if (v.list->view.rfind("dict_", 0) == 0) {
        Value plain = Value::make_list(v.list->items);
        return v.list->view + "(" + repr(plain) + ")";
      }
      if (!v.list->view.empty()) {
        fail("cannot reproduce Python's repr() of a " + v.list->view +
             " object (convert it with |list first)");
      }
      const auto& items = v.list->items;
      std::string out = v.list->tuple ? "(" : "[";
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += repr(items[i]);
        check_size(out.size());
      }
      if (v.list->tuple && items.size() == 1) out += ",";
      out += v.list->tuple ? ")" : "]";
      return out;
    }
    case Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, x] : v.dict->items) {
        if (!first) out += ", ";
        first = false;
        out += repr(k) + ": " + repr(x);
        check_size(out.size());
      }
      return out + "}";
    }
    case Kind::Undefined:
      return "Undefined";
    default:
      return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
      return "";
    case Kind::None:
      return "None";
    case Kind::Bool:
      return v.b ? "True" : "False";
    case Kind::Int:
      return std::to_string(v.i);
    case Kind::Float:
      return py_float_repr(v.f);
    case Kind::Str:
      return v.s;
    case Kind::List:
    case Kind::Dict:
      return repr(v);
    case Kind::Object:
      return v.obj->repr();
    case Kind::Callable:
      fail("cannot print the function '" + v.fn->name + "' (its Python repr has an address)");
  }
  return "";
}

// ---- comparison ------------------------------------------------------------------------------
namespace {
double num(const Value& v) {
  return v.kind == Kind::Float ? v.f : static_cast<double>(v.kind == Kind::Bool ? v.b : v.i);
}
bool int_like(const Value& v) { return v.kind == Kind::Int || v.kind == Kind::Bool; }
std::int64_t ival(const Value& v) { return v.kind == Kind::Bool ? v.b : v.i; }
}  // namespace

bool py_eq(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (int_like(a) && int_like(b)) return ival(a) == ival(b);
    return num(a) == num(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::Undefined:
    case Kind::None:
      return true;
    case Kind::Str:
      return a.s == b.s;
    case Kind::List: {
      if (!a.list->view.empty() || !b.list->view.empty()) {
        fail("comparing " + (a.list->view.empty() ? b.list->view : a.list->view) +
             " objects is not supported");
      }
      if (a.list->tuple != b.list->tuple) return false;
      const auto& x = a.list->items;
      const auto& y = b.list->items;
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!py_eq(x[i], y[i])) return false;
      }
      return true;
    }
    case Kind::Dict: {
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, v] : a.dict->items) {
        const Value* o = b.dict->find(k);
        if (!o || !py_eq(v, *o)) return false;
      }
      return true;
    }
    case Kind::Object:
      return a.obj == b.obj;
    case Kind::Callable:
      return a.fn == b.fn;
    default:
      return false;
  }
}

int py_compare(const Value& a, const Value& b, const char* op) {
  if (a.is_undefined() || b.is_undefined()) {
    fail(a.is_undefined() ? (a.s.empty() ? "value is undefined" : a.s)
                          : (b.s.empty() ? "value is undefined" : b.s));
  }
  if ((a.kind == Kind::List && !a.list->view.empty()) ||
      (b.kind == Kind::List && !b.list->view.empty())) {
    fail(std::string("'") + op + "' not supported between instances of '" + type_name(a) +
         "' and '" + type_name(b) + "'");
  }
  if (a.is_number() && b.is_number()) {
    if (int_like(a) && int_like(b)) return ival(a) < ival(b) ? -1 : ival(a) > ival(b) ? 1 : 0;
    double x = num(a), y = num(b);
    if (std::isnan(x) || std::isnan(y)) fail("comparisons with nan are not supported");
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.kind == Kind::Str && b.kind == Kind::Str) {
    int c = a.s.compare(b.s);  // UTF-8 byte order is code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.kind == Kind::List && b.kind == Kind::List && a.list->tuple == b.list->tuple) {
    const auto& x = a.list->items;
    const auto& y = b.list->items;
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!py_eq(x[i], y[i])) return py_compare(x[i], y[i], op);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  fail(std::string("'") + op + "' not supported between instances of '" + type_name(a) + "' and '" +
       type_name(b) + "'");
}

bool py_contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::Undefined:
      return false;
    case Kind::Str:
      if (item.kind != Kind::Str) {
        fail("'in <string>' requires string as left operand, not " + type_name(item));
      }
      return container.s.find(item.s) != std::string::npos;
    case Kind::List:
      if (container.list->is_iterator()) {  // `in` consumes up to and including the match
        if (!container.list->deferred_error.empty()) fail(container.list->deferred_error);
        const auto& items = container.list->items;
        while (container.list->pos < items.size()) {
          if (py_eq(items[container.list->pos++], item)) return true;
        }
        return false;
      }
      for (const auto& x : container.list->items) {
        if (py_eq(x, item)) return true;
      }
      return false;
    case Kind::Dict:
      return container.dict->find(item) != nullptr;
    default:
      fail("argument of type '" + type_name(container) + "' is not iterable");
  }
}

std::int64_t py_len(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
      return 0;
    case Kind::Str:
      return static_cast<std::int64_t>(utf8_chars(v.s).size());
    case Kind::List:
      if (v.list->is_iterator()) fail("object of type '" + v.list->view + "' has no len()");
      return static_cast<std::int64_t>(v.list->items.size());
    case Kind::Dict:
      return static_cast<std::int64_t>(v.dict->items.size());
    default:
      fail("object of type '" + type_name(v) + "' has no len()");
  }
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
      return {};
    case Kind::List:
      if (v.list->is_iterator()) {
        if (!v.list->deferred_error.empty()) fail(v.list->deferred_error);
        std::size_t from = std::min(v.list->pos, v.list->items.size());
        v.list->pos = v.list->items.size();
        return std::vector<Value>(v.list->items.begin() + static_cast<std::ptrdiff_t>(from),
                                  v.list->items.end());
      }
      return v.list->items;
    case Kind::Dict: {
      std::vector<Value> keys;
      keys.reserve(v.dict->items.size());
      for (const auto& kv : v.dict->items) keys.push_back(kv.first);
      return keys;
    }
    case Kind::Str: {
      if (v.markup) fail("iterating a |safe (Markup) string is not supported");
      std::vector<Value> out;
      for (auto& ch : utf8_chars(v.s)) out.push_back(Value::str(std::move(ch)));
      return out;
    }
    default:
      fail("'" + type_name(v) + "' object is not iterable");
  }
}

// ---- whitespace ------------------------------------------------------------------------------
bool is_py_space(std::uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

std::string py_strip(const std::string& s, bool left, bool right, const std::string* chars) {
  std::vector<std::string> cs = utf8_chars(s);
  std::vector<std::string> set;
  if (chars) set = utf8_chars(*chars);
  auto strip_me = [&](const std::string& ch) {
    if (!chars) return is_py_space(cp_of(ch));
    return std::find(set.begin(), set.end(), ch) != set.end();
  };
  std::size_t b = 0, e = cs.size();
  if (left) {
    while (b < e && strip_me(cs[b])) ++b;
  }
  if (right) {
    while (e > b && strip_me(cs[e - 1])) --e;
  }
  std::string out;
  for (std::size_t i = b; i < e; ++i) out += cs[i];
  return out;
}

// ---- JSON ------------------------------------------------------------------------------------
Value from_json(const nlohmann::ordered_json& j, int depth) {
  if (depth > 512) fail("context JSON is nested too deeply");
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::none();
    case nlohmann::json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::integer(j.get<std::int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX))
        fail("context integer does not fit in 64 bits");
      return Value::integer(static_cast<std::int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value::real(j.get<double>());
    case nlohmann::json::value_t::string:
      return Value::str(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(from_json(x, depth + 1));
      return Value::make_list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      auto d = std::make_shared<Dict>();
      for (const auto& [k, x] : j.items()) d->set(Value::str(k), from_json(x, depth + 1));
      return Value::make_dict(std::move(d));
    }
    default:
      fail("context holds a JSON value of an unsupported type");
  }
}

namespace {
std::string json_string(const std::string& s, bool ensure_ascii) {
  std::string out = "\"";
  for (const std::string& ch : utf8_chars(s)) {
    std::uint32_t cp = cp_of(ch);
    char buf[16];
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
      if (cp >= 0x10000) {
        std::uint32_t v = cp - 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      }
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string json_key(const Value& k, bool ensure_ascii) {
  switch (k.kind) {
    case Kind::Str:
      return json_string(k.s, ensure_ascii);
    case Kind::Bool:
      return k.b ? "\"true\"" : "\"false\"";
    case Kind::None:
      return "\"null\"";
    case Kind::Int:
      return "\"" + std::to_string(k.i) + "\"";
    case Kind::Float:
      return "\"" + py_float_repr(k.f) + "\"";
    default:
      fail("keys must be str, int, float, bool or None, not " + type_name(k));
  }
}

void json_write(std::string& out, const Value& v, const JsonOptions& opt, int level) {
  check_size(out.size());
  if (level > 512) fail("tojson: value is nested too deeply");
  auto newline = [&](int lvl) {
    if (!opt.indent) return;
    out += '\n';
    for (int i = 0; i < lvl; ++i) out += *opt.indent;
  };
  switch (v.kind) {
    case Kind::None:
      out += "null";
      return;
    case Kind::Bool:
      out += v.b ? "true" : "false";
      return;
    case Kind::Int:
      out += std::to_string(v.i);
      return;
    case Kind::Float:
      if (std::isnan(v.f))
        out += "NaN";
      else if (std::isinf(v.f))
        out += v.f < 0 ? "-Infinity" : "Infinity";
      else
        out += py_float_repr(v.f);
      return;
    case Kind::Str:
      out += json_string(v.s, opt.ensure_ascii);
      return;
    case Kind::List: {
      if (!v.list->view.empty())
        fail("Object of type " + v.list->view + " is not JSON serializable");
      if (v.list->items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      bool first = true;
      for (const auto& x : v.list->items) {
        if (!first) out += opt.item_sep;
        first = false;
        newline(level + 1);
        json_write(out, x, opt, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Kind::Dict: {
      if (v.dict->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<Value, Value>*> items;
      for (const auto& kv : v.dict->items) items.push_back(&kv);
      if (opt.sort_keys) {
        std::stable_sort(items.begin(), items.end(),
                         [](auto* a, auto* b) { return py_compare(a->first, b->first, "<") < 0; });
      }
      out += '{';
      bool first = true;
      for (const auto* kv : items) {
        if (!first) out += opt.item_sep;
        first = false;
        newline(level + 1);
        out += json_key(kv->first, opt.ensure_ascii);
        out += opt.key_sep;
        json_write(out, kv->second, opt, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
    default:
      fail("Object of type " + type_name(v) + " is not JSON serializable");
  }
}
}  // namespace

std::string to_json(const Value& v, const JsonOptions& opt) {
  std::string out;
  json_write(out, v, opt, 0);
  check_size(out.size());
  return out;
}

}  // namespace omni::jinja::detail
