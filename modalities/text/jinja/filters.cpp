// Filters and tests: jinja2's builtins (jinja2/filters.py, jinja2/tests.py) that chat templates
// use, and transformers' own `tojson` (json.dumps with ensure_ascii=False, no HTML escaping).
//
// Filters: abs attr capitalize count d default first float indent int items join last length list
// lower map max min reject rejectattr replace reverse round safe select selectattr sort string sum
// title tojson trim unique upper.
// Tests: boolean callable defined divisibleby eq equalto even false float ge greaterthan gt in
// integer iterable le lessthan lower lt mapping ne none number odd sameas sequence string true
// undefined upper == != < <= > >=.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "modalities/text/jinja/internal.h"

namespace omni::jinja::detail {
namespace {

const std::set<std::string> kFilters = {
    "abs",    "attr", "capitalize", "count",      "d",      "default",    "first",   "float",
    "indent", "int",  "items",      "join",       "last",   "length",     "list",    "lower",
    "map",    "max",  "min",        "dictsort",   "reject", "rejectattr", "replace", "reverse",
    "round",  "safe", "select",     "selectattr", "sort",   "string",     "sum",     "title",
    "tojson", "trim", "unique",     "upper"};

const std::set<std::string> kTests = {
    "boolean", "callable", "defined",  "divisibleby", "eq",          "equalto",
    "even",    "false",    "float",    "ge",          "greaterthan", "gt",
    "in",      "integer",  "iterable", "le",          "lessthan",    "lower",
    "lt",      "mapping",  "ne",       "none",        "number",      "odd",
    "sameas",  "sequence", "string",   "true",        "undefined",   "upper",
    "==",      "!=",       "<",        "<=",          ">",           ">="};

CallArgs rest_args(const CallArgs& a, std::size_t from) {
  CallArgs r;
  for (std::size_t i = from; i < a.pos.size(); ++i) r.pos.push_back(a.pos[i]);
  r.kw = a.kw;
  return r;
}

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0.
Value attr_path(const Value& v, const Value& attribute) {
  if (attribute.kind == Kind::Int) return get_item(v, attribute);
  std::string path = to_str(attribute);
  Value cur = v;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    cur =
        digits ? get_item(cur, Value::integer(std::stoll(part))) : get_item(cur, Value::str(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

std::string lower_ascii(const std::string& s) {
  std::string r = s;
  for (char& c : r) {
    if (static_cast<unsigned char>(c) >= 0x80)
      fail("case-insensitive comparison of non-ASCII text is not supported");
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return r;
}

Value sort_key(const Value& v, bool case_sensitive, const Value& attribute) {
  Value k = attribute.kind == Kind::None ? v : attr_path(v, attribute);
  if (!case_sensitive && k.kind == Kind::Str) return Value::str(lower_ascii(k.s));
  return k;
}

std::optional<std::int64_t> parse_py_int(std::string s, int base) {
  s = py_strip(s, true, true, nullptr);
  std::string t;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() &&
        std::isalnum(static_cast<unsigned char>(s[i - 1])) &&
        std::isalnum(static_cast<unsigned char>(s[i + 1]))) {
      continue;
    }
    t += s[i];
  }
  if (t.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(t.c_str(), &end, base);
  if (errno != 0 || end != t.c_str() + t.size()) return std::nullopt;
  if (t.find_first_of("xXoObB") != std::string::npos && base == 10) return std::nullopt;
  return static_cast<std::int64_t>(v);
}

std::optional<double> parse_py_float(std::string s) {
  s = py_strip(s, true, true, nullptr);
  if (s.empty()) return std::nullopt;
  std::string low = s;
  for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string body = low[0] == '+' || low[0] == '-' ? low.substr(1) : low;
  if (body == "inf" || body == "infinity") return low[0] == '-' ? -INFINITY : INFINITY;
  if (body == "nan") return NAN;
  for (char c : body) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.' && c != 'e' && c != '+' &&
        c != '-') {
      return std::nullopt;
    }
  }
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

Value do_tojson(const Value& v, const CallArgs& a) {
  a.check_max(4, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson");
  JsonOptions opt;
  opt.ensure_ascii = truthy(a.get_or(0, "ensure_ascii", Value::boolean(false)));
  Value indent = a.get_or(1, "indent", Value::none());
  if (indent.kind == Kind::Int || indent.kind == Kind::Bool) {
    std::int64_t n = indent.kind == Kind::Bool ? indent.b : indent.i;
    check_size(static_cast<std::size_t>(std::max<std::int64_t>(0, n)));
    opt.indent = std::string(static_cast<std::size_t>(std::max<std::int64_t>(0, n)), ' ');
  } else if (indent.kind == Kind::Str) {
    opt.indent = indent.s;
  } else if (indent.kind != Kind::None) {
    fail("tojson: indent must be an int, a string or None");
  }
  Value seps = a.get_or(2, "separators", Value::none());
  if (seps.kind == Kind::List && seps.list->items.size() == 2 &&
      seps.list->items[0].kind == Kind::Str && seps.list->items[1].kind == Kind::Str) {
    opt.item_sep = seps.list->items[0].s;
    opt.key_sep = seps.list->items[1].s;
  } else if (seps.kind == Kind::None) {
    opt.item_sep = opt.indent ? "," : ", ";
  } else {
    fail("tojson: separators must be a pair of strings");
  }
  opt.sort_keys = truthy(a.get_or(3, "sort_keys", Value::boolean(false)));
  return Value::str(to_json(v, opt));
}

Value do_indent(const Value& v, const CallArgs& a) {
  a.check_max(3, {"width", "first", "blank"}, "indent");
  Value width = a.get_or(0, "width", Value::integer(4));
  std::string ind;
  if (width.kind == Kind::Str) {
    ind = width.s;
  } else if (width.kind == Kind::Int) {
    check_size(static_cast<std::size_t>(std::max<std::int64_t>(0, width.i)));
    ind = std::string(static_cast<std::size_t>(std::max<std::int64_t>(0, width.i)), ' ');
  } else {
    fail("indent: width must be an int or a string");
  }
  bool first = truthy(a.get_or(1, "first", Value::boolean(false)));
  bool blank = truthy(a.get_or(2, "blank", Value::boolean(false)));
  if (v.is_undefined()) fail_undefined(v);
  if (v.kind != Kind::Str)
    fail("unsupported operand type(s) for +=: '" + type_name(v) + "' and 'str'");
  std::string s = v.s + "\n";
  CallArgs none;
  Value lines_v = call_value(get_attr(Value::str(s), "splitlines"), none);
  std::vector<std::string> lines;
  for (const auto& l : lines_v.list->items) lines.push_back(l.s);
  std::string rv;
  if (blank) {
    for (std::size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + ind : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (std::size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].empty()) rv += ind;
      rv += lines[i];
    }
  }
  if (first) rv = ind + rv;
  check_size(rv.size());
  return Value::str(rv);
}

Value select_like(const std::string& name, const Value& v, const CallArgs& a) {
  bool attr_mode = name == "selectattr" || name == "rejectattr";
  bool reject = name == "reject" || name == "rejectattr";
  std::size_t idx = 0;
  Value attribute;
  if (attr_mode) {
    if (a.pos.empty()) fail(name + ": missing attribute name");
    attribute = a.pos[idx++];
  }
  std::string test;
  bool have_test = idx < a.pos.size();
  if (have_test) {
    if (a.pos[idx].kind != Kind::Str) fail(name + ": the test name must be a string");
    test = a.pos[idx++].s;
    if (!is_known_test(test)) fail("no test named '" + test + "' (not supported)");
  }
  if (!a.kw.empty()) fail(name + "() does not take keyword arguments here");
  CallArgs targs = rest_args(a, idx);
  std::vector<Value> out;
  if (!truthy(v)) return make_iterator({});  // jinja2: `if value:` before iterating
  for (const Value& item : iterate(v)) {
    Value x = attr_mode ? attr_path(item, attribute) : item;
    bool ok = have_test ? apply_test(test, x, targs) : truthy(x);
    if (ok != reject) out.push_back(item);
  }
  return make_iterator(std::move(out));
}

Value do_map(const Value& v, const CallArgs& a) {
  if (!truthy(v)) return make_iterator({});  // jinja2: `if value:` before iterating
  const Value* attribute = nullptr;
  Value def;
  bool has_default = false;
  for (const auto& [k, x] : a.kw) {
    if (k == "attribute")
      attribute = &x;
    else if (k == "default") {
      def = x;
      has_default = true;
    }
  }
  std::vector<Value> out;
  if (attribute) {
    if (!a.pos.empty()) fail("map: positional arguments with attribute= are not supported");
    for (const Value& item : iterate(v)) {
      Value x = attr_path(item, *attribute);
      if (x.is_undefined() && has_default) x = def;
      out.push_back(x);
    }
    return make_iterator(std::move(out));
  }
  if (a.pos.empty() || a.pos[0].kind != Kind::Str)
    fail("map: a filter name or attribute= is required");
  std::string f = a.pos[0].s;
  if (!is_known_filter(f)) fail("no filter named '" + f + "' (not supported)");
  CallArgs fargs = rest_args(a, 1);
  for (const Value& item : iterate(v)) out.push_back(apply_filter(f, item, fargs));
  return make_iterator(std::move(out));
}

Value do_round(const Value& v, const CallArgs& a) {
  a.check_max(2, {"precision", "method"}, "round");
  std::int64_t prec = 0;
  Value p = a.get_or(0, "precision", Value::integer(0));
  if (p.kind == Kind::Int) prec = p.i;
  std::string method = to_str(a.get_or(1, "method", Value::str("common")));
  if (!v.is_number()) fail("round: the value must be a number");
  double x = v.kind == Kind::Float ? v.f : static_cast<double>(v.kind == Kind::Bool ? v.b : v.i);
  if (prec < 0 || prec > 15) fail("round: precision outside 0..15 is not supported");
  double scale = std::pow(10.0, static_cast<double>(prec));
  if (method == "common") {
    // Python's round(int, 0) is the int itself
    if (v.kind == Kind::Int || v.kind == Kind::Bool)
      return Value::integer(v.kind == Kind::Bool ? v.b : v.i);
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(prec),
                  x);  // correctly rounded, ties to even
    return Value::real(std::strtod(buf, nullptr));
  }
  if (method == "floor") return Value::real(std::floor(x * scale) / scale);
  if (method == "ceil") return Value::real(std::ceil(x * scale) / scale);
  fail("round: method must be common, ceil or floor");
}

// jinja2's map/select/reject/unique/items are generators: an error in them (iterating a number,
// a failing test) only happens when the result is used. Compute eagerly, defer the error.
template <typename F>
Value lazily(F&& compute) {
  try {
    return compute();
  } catch (const Fail& e) {
    Value g = make_iterator({});
    const_cast<List&>(*g.list).deferred_error = e.message;
    return g;
  }
}

Value sort_family(const std::string& name, const Value& v, const CallArgs& a) {
  bool is_sort = name == "sort";
  if (is_sort) {
    a.check_max(3, {"reverse", "case_sensitive", "attribute"}, name);
  } else if (name == "unique") {
    a.check_max(2, {"case_sensitive", "attribute"}, name);
  } else {
    a.check_max(2, {"case_sensitive", "attribute"}, name);
  }
  std::size_t off = is_sort ? 1 : 0;
  bool rev = is_sort && truthy(a.get_or(0, "reverse", Value::boolean(false)));
  bool cs = truthy(a.get_or(off, "case_sensitive", Value::boolean(false)));
  Value attribute = a.get_or(off + 1, "attribute", Value::none());
  std::vector<Value> items = iterate(v);
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& x : items) keyed.emplace_back(sort_key(x, cs, attribute), x);
  if (name == "unique") {
    std::vector<Value> out, seen;
    for (auto& [k, x] : keyed) {
      bool dup = false;
      for (auto& s : seen) dup = dup || py_eq(s, k);
      if (!dup) {
        seen.push_back(k);
        out.push_back(x);
      }
    }
    return make_iterator(std::move(out));
  }
  if (name == "min" || name == "max") {
    if (keyed.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    std::size_t best = 0;
    for (std::size_t i = 1; i < keyed.size(); ++i) {
      int c = py_compare(keyed[i].first, keyed[best].first, "<");
      if ((name == "min" && c < 0) || (name == "max" && c > 0)) best = i;
    }
    return keyed[best].second;
  }
  std::stable_sort(keyed.begin(), keyed.end(), [rev](const auto& x, const auto& y) {
    return rev ? py_compare(y.first, x.first, "<") < 0 : py_compare(x.first, y.first, "<") < 0;
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(kv.second);
  return Value::make_list(std::move(out));
}

}  // namespace

bool is_known_filter(const std::string& name) { return kFilters.count(name) > 0; }
bool is_known_test(const std::string& name) { return kTests.count(name) > 0; }

Value apply_filter(const std::string& name, const Value& v, CallArgs& a) {
  if (v.markup && name != "length" && name != "count" && name != "tojson" && name != "default" &&
      name != "d") {
    if (name == "safe" || name == "string") return v;  // Markup stays Markup
    fail("the '" + name + "' filter on a |safe (Markup) string is not supported");
  }
  if (name == "tojson") return do_tojson(v, a);
  if (name == "length" || name == "count") {
    a.check_max(0, {}, name);
    return Value::integer(py_len(v));
  }
  if (name == "default" || name == "d") {
    a.check_max(2, {"default_value", "boolean"}, name);
    Value def = a.get_or(0, "default_value", Value::str(""));
    bool boolean = truthy(a.get_or(1, "boolean", Value::boolean(false)));
    if (v.is_undefined() || (boolean && !truthy(v))) return def;
    return v;
  }
  if (name == "trim") {
    a.check_max(1, {"chars"}, name);
    Value chars = a.get_or(0, "chars", Value::none());
    if (chars.kind == Kind::None) return Value::str(py_strip(to_str(v), true, true, nullptr));
    std::string cs = to_str(chars);
    return Value::str(py_strip(to_str(v), true, true, &cs));
  }
  if (name == "join") {
    a.check_max(2, {"d", "attribute"}, name);
    std::string sep = to_str(a.get_or(0, "d", Value::str("")));
    Value attribute = a.get_or(1, "attribute", Value::none());
    std::string out;
    bool first = true;
    for (const Value& x : iterate(v)) {
      if (!first) out += sep;
      first = false;
      out += to_str(attribute.kind == Kind::None ? x : attr_path(x, attribute));
      check_size(out.size());
    }
    return Value::str(out);
  }
  if (name == "string" || name == "safe") {
    a.check_max(0, {}, name);
    Value r = Value::str(to_str(v));
    r.markup = name == "safe";
    return r;
  }
  if (name == "title") {
    // jinja2's do_title is not str.title(): it splits on runs of [-\s({[<] and capitalises the
    // first character of every other piece.
    a.check_max(0, {}, name);
    std::string out, piece;
    auto flush = [&] {
      if (piece.empty()) return;
      CallArgs none;
      out += call_value(get_attr(Value::str(piece), "capitalize"), none).s;
      piece.clear();
    };
    for (const std::string& ch : utf8_chars(to_str(v))) {
      bool sep = ch == "-" || ch == "(" || ch == "{" || ch == "[" || ch == "<";
      if (!sep) {
        std::size_t len = ch.size();
        std::uint32_t cp = static_cast<unsigned char>(ch[0]);
        if (len > 1) {
          cp &= 0x3Fu >> (len - 1);
          for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (ch[k] & 0x3F);
        }
        sep = is_py_space(cp);
      }
      if (sep) {
        flush();
        out += ch;
      } else {
        piece += ch;
      }
    }
    flush();
    return Value::str(out);
  }
  if (name == "lower" || name == "upper" || name == "capitalize") {
    a.check_max(0, {}, name);
    CallArgs none;
    return call_value(get_attr(Value::str(to_str(v)), name), none);
  }
  if (name == "replace") {
    a.check_max(3, {"old", "new", "count"}, name);
    CallArgs r;
    r.pos = {a.get_or(0, "old", Value::none()), a.get_or(1, "new", Value::none())};
    Value count = a.get_or(2, "count", Value::none());
    if (count.kind != Kind::None) r.pos.push_back(count);
    return call_value(get_attr(Value::str(to_str(v)), "replace"), r);
  }
  if (name == "first" || name == "last") {
    a.check_max(0, {}, name);

    if (v.kind == Kind::List && v.list->is_iterator()) {
      if (!v.list->deferred_error.empty()) fail(v.list->deferred_error);
      if (name == "last") fail("'" + v.list->view + "' object is not reversible");
      if (v.list->pos < v.list->items.size()) return v.list->items[v.list->pos++];
      return Value::undefined("No first item, sequence was empty.");
    }
    std::vector<Value> items = iterate(v);
    if (items.empty())
      return Value::undefined(std::string("No ") + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") {
    a.check_max(0, {}, name);
    return Value::make_list(iterate(v));
  }
  if (name == "items") {
    a.check_max(0, {}, name);
    if (v.is_undefined()) return make_iterator({});
    if (v.kind != Kind::Dict)
      return lazily([]() -> Value { fail("Can only get item pairs from a mapping."); });
    std::vector<Value> out;
    for (const auto& [k, x] : v.dict->items) out.push_back(Value::make_list({k, x}, true));
    return make_iterator(std::move(out));
  }
  if (name == "int") {
    a.check_max(2, {"default", "base"}, name);
    Value def = a.get_or(0, "default", Value::integer(0));
    int base = static_cast<int>(a.get_or(1, "base", Value::integer(10)).i);
    if (v.is_undefined()) fail_undefined(v);  // int(Undefined) raises in jinja2
    if (v.kind == Kind::Int) return v;
    if (v.kind == Kind::Bool) return Value::integer(v.b);
    // Python: int(nan) is a ValueError (-> default); int(inf) an OverflowError (raised); a finite
    // float beyond 64 bits would be a big int, which we do not have.
    auto from_float = [&](double f) {
      if (std::isnan(f)) return def;
      if (std::isinf(f)) fail("cannot convert float infinity to integer");
      if (std::fabs(f) >= 9.2e18) fail("integers beyond 64 bits are not supported");
      return Value::integer(static_cast<std::int64_t>(f));
    };
    if (v.kind == Kind::Float) return from_float(v.f);
    if (v.kind == Kind::Str) {
      if (auto i = parse_py_int(v.s, base)) return Value::integer(*i);
      if (auto f = parse_py_float(v.s)) return from_float(*f);
    }
    return def;
  }
  if (name == "float") {
    a.check_max(1, {"default"}, name);
    Value def = a.get_or(0, "default", Value::real(0.0));
    if (v.is_undefined()) fail_undefined(v);  // float(Undefined) raises in jinja2
    if (v.kind == Kind::Float) return v;
    if (v.kind == Kind::Int || v.kind == Kind::Bool) {
      return Value::real(static_cast<double>(v.kind == Kind::Bool ? v.b : v.i));
    }
    if (v.kind == Kind::Str) {
      if (auto f = parse_py_float(v.s)) return Value::real(*f);
    }
    return def;
  }
  if (name == "abs") {
    a.check_max(0, {}, name);
    if (v.kind == Kind::Int) {
      if (v.i == INT64_MIN) fail("integer overflow");
      return Value::integer(v.i < 0 ? -v.i : v.i);
    }
    if (v.kind == Kind::Bool) return Value::integer(v.b);
    if (v.kind == Kind::Float) return Value::real(std::fabs(v.f));
    fail("bad operand type for abs(): '" + type_name(v) + "'");
  }
  if (name == "round") return do_round(v, a);
  if (name == "reverse") {
    a.check_max(0, {}, name);
    if (v.kind == Kind::Str) {
      std::vector<std::string> cs = utf8_chars(v.s);
      std::string out;
      for (auto it = cs.rbegin(); it != cs.rend(); ++it) out += *it;
      return Value::str(out);
    }
    bool was_iterator = v.kind == Kind::List && v.list->is_iterator();
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    // reversed() of a list/dict/range is an iterator; of a generator jinja2 falls back to a list
    if (was_iterator) return Value::make_list(std::move(items));
    return make_iterator(std::move(items), "list_reverseiterator");
  }
  if (name == "unique") return lazily([&] { return sort_family(name, v, a); });
  if (name == "sort" || name == "min" || name == "max") return sort_family(name, v, a);
  if (name == "sum") {
    a.check_max(2, {"attribute", "start"}, name);
    Value attribute = a.get_or(0, "attribute", Value::none());
    Value total = a.get_or(1, "start", Value::integer(0));
    for (const Value& x : iterate(v)) {
      total = arith("+", total, attribute.kind == Kind::None ? x : attr_path(x, attribute));
    }
    return total;
  }
  if (name == "map") return lazily([&] { return do_map(v, a); });
  if (name == "dictsort") {
    a.check_max(3, {"case_sensitive", "by", "reverse"}, name);
    bool cs = truthy(a.get_or(0, "case_sensitive", Value::boolean(false)));
    std::string by = to_str(a.get_or(1, "by", Value::str("key")));
    bool rev = truthy(a.get_or(2, "reverse", Value::boolean(false)));
    if (by != "key" && by != "value") fail("You can only sort by either \"key\" or \"value\"");
    if (v.kind != Kind::Dict) fail("dictsort: the value must be a mapping");
    std::vector<std::pair<Value, Value>> keyed;  // (sort key, (k, v) tuple)
    for (const auto& [k, x] : v.dict->items) {
      keyed.emplace_back(sort_key(by == "key" ? k : x, cs, Value::none()),
                         Value::make_list({k, x}, true));
    }
    std::stable_sort(keyed.begin(), keyed.end(), [rev](const auto& p, const auto& q) {
      return rev ? py_compare(q.first, p.first, "<") < 0 : py_compare(p.first, q.first, "<") < 0;
    });
    std::vector<Value> out;
    for (auto& kv : keyed) out.push_back(kv.second);
    return Value::make_list(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    return lazily([&] { return select_like(name, v, a); });
  }
  if (name == "attr") {
    a.check_max(1, {}, name);
    if (a.pos.empty()) fail("attr() takes exactly one argument");
    std::string n = to_str(a.pos[0]);
    if (v.kind == Kind::Dict) {
      // Python getattr on a dict finds its methods only, never its keys.
      Value m = get_attr(Value::make_dict(std::make_shared<Dict>()), n);
      if (m.kind == Kind::Callable) return get_attr(v, n);
      return Value::undefined("'dict object' has no attribute '" + n + "'");
    }
    return get_attr(v, n);
  }
  if (name == "indent") return do_indent(v, a);
  fail("no filter named '" + name + "'");
}

bool apply_test(const std::string& name, const Value& v, CallArgs& a) {
  auto arg = [&]() -> const Value& {
    if (a.pos.size() != 1 || !a.kw.empty()) fail("test '" + name + "' takes exactly one argument");
    return a.pos[0];
  };
  auto noargs = [&]() {
    if (!a.pos.empty() || !a.kw.empty()) fail("test '" + name + "' takes no arguments");
  };
  if (name == "defined") return noargs(), !v.is_undefined();
  if (name == "undefined") return noargs(), v.is_undefined();
  if (name == "none") return noargs(), v.kind == Kind::None;
  if (name == "boolean") return noargs(), v.kind == Kind::Bool;
  if (name == "true") return noargs(), v.kind == Kind::Bool && v.b;
  if (name == "false") return noargs(), v.kind == Kind::Bool && !v.b;
  if (name == "integer") return noargs(), v.kind == Kind::Int;
  if (name == "float") return noargs(), v.kind == Kind::Float;
  if (name == "number") return noargs(), v.is_number();
  if (name == "string") return noargs(), v.kind == Kind::Str;
  if (name == "mapping") return noargs(), v.kind == Kind::Dict;
  // jinja2's LoopContext is iterable and callable (loop(...) of recursive loops)
  bool loop_ctx = v.kind == Kind::Object && v.obj->type_name() == "LoopContext";
  if (name == "iterable") {
    noargs();
    if (loop_ctx) return true;
    return v.kind == Kind::Str || v.kind == Kind::List || v.kind == Kind::Dict || v.is_undefined();
  }
  if (name == "sequence") {
    noargs();
    if (v.kind == Kind::List && !v.list->view.empty()) return v.list->view == "range";
    return v.kind == Kind::Str || v.kind == Kind::List || v.kind == Kind::Dict || v.is_undefined();
  }
  // Undefined has __call__ (that raises), so jinja2 calls it callable
  if (name == "callable") return noargs(), v.kind == Kind::Callable || loop_ctx || v.is_undefined();
  if (name == "lower" || name == "upper") {
    noargs();
    CallArgs none;
    return truthy(
        call_value(get_attr(Value::str(to_str(v)), name == "lower" ? "islower" : "isupper"), none));
  }
  if (name == "odd" || name == "even") {
    noargs();
    Value r = arith("%", v, Value::integer(2));
    return name == "odd" ? py_eq(r, Value::integer(1)) : py_eq(r, Value::integer(0));
  }
  if (name == "divisibleby") return py_eq(arith("%", v, arg()), Value::integer(0));
  if (name == "eq" || name == "equalto" || name == "==") return py_eq(v, arg());
  if (name == "ne" || name == "!=") return !py_eq(v, arg());
  if (name == "lt" || name == "lessthan" || name == "<") return py_compare(v, arg(), "<") < 0;
  if (name == "le" || name == "<=") return py_compare(v, arg(), "<=") <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return py_compare(v, arg(), ">") > 0;
  if (name == "ge" || name == ">=") return py_compare(v, arg(), ">=") >= 0;
  if (name == "in") return py_contains(arg(), v);
  if (name == "sameas") {
    const Value& o = arg();
    if ((v.kind == Kind::None || v.kind == Kind::Bool) &&
        (o.kind == Kind::None || o.kind == Kind::Bool)) {
      return v.kind == o.kind && (v.kind == Kind::None || v.b == o.b);
    }
    if (v.is_undefined() || o.is_undefined()) return false;
    if (v.kind == Kind::None || v.kind == Kind::Bool || o.kind == Kind::None ||
        o.kind == Kind::Bool) {
      return false;
    }
    fail("'sameas' is only supported for none, true and false");
  }
  fail("no test named '" + name + "'");
}

}  // namespace omni::jinja::detail
