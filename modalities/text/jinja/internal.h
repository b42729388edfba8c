// Internals of the Jinja interpreter (jinja.h): values, tokens, the syntax tree and the error type
// that carries a template position. Not a public header.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "modalities/text/jinja/jinja.h"

namespace omni::jinja::detail {

// ---------------------------------------------------------------------------------------------
// Errors. `Fail` is thrown without a position by value operations and builtins; the evaluator
// adds the line:column of the expression being evaluated (`Located`), and Template turns that
// into omni::InputError.
struct Fail {
  std::string message;
};
struct Located {
  int line = 0;
  int col = 0;
  std::string message;
  bool raised = false;  // from raise_exception()
};
[[noreturn]] void fail(std::string message);

// ---------------------------------------------------------------------------------------------
// Values: the Python objects a chat template sees (JSON data plus undefined, tuples, namespaces,
// the loop object and callables).
struct Value;
struct List;
struct Dict;
struct Object;
struct Callable;
using ListP = std::shared_ptr<const List>;
using DictP = std::shared_ptr<const Dict>;
using ObjectP = std::shared_ptr<Object>;
using CallableP = std::shared_ptr<const Callable>;

enum class Kind : std::uint8_t {
  Undefined,
  None,
  Bool,
  Int,
  Float,
  Str,
  List,
  Dict,
  Object,
  Callable
};

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  // Str made by |safe: jinja2's Markup, which HTML-escapes what is added to it. We print and
  // compare it like a str but refuse +, *, %, methods, indexing and filters on it.
  bool markup = false;
  std::int64_t i = 0;
  double f = 0.0;
  std::string s;  // Str; for Undefined, the message an access to it raises
  ListP list;
  DictP dict;
  ObjectP obj;
  CallableP fn;

  static Value undefined(std::string hint);
  static Value none();
  static Value boolean(bool v);
  static Value integer(std::int64_t v);
  static Value real(double v);
  static Value str(std::string v);
  static Value make_list(std::vector<Value> items, bool tuple = false);
  static Value make_dict(std::shared_ptr<Dict> d);
  static Value object(ObjectP o);
  static Value callable(std::string name, std::function<Value(struct CallArgs&)> fn);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_str() const { return kind == Kind::Str; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
};

struct List {
  std::vector<Value> items;
  bool tuple = false;
  // Python objects we model as lists but whose repr/== differ ("range", "dict_items", ...):
  // printing or comparing them is refused. "generator" and "list_reverseiterator" (what jinja2's
  // map/select/unique/items/reverse filters return) are also always true, have no len(), cannot
  // be indexed, and are consumed as Python consumes them (`pos` items taken so far).
  std::string view;
  mutable std::size_t pos = 0;
  // A generator whose (lazy, in jinja2) computation failed: the error is raised when it is used.
  std::string deferred_error;
  // repr() of a range, e.g. "range(0, 4)".
  std::string range_repr;
  bool is_iterator() const { return view == "generator" || view == "list_reverseiterator"; }
};

// An insertion-ordered dict. Keys are hashable values (str, int, float, bool, None, tuples).
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  std::unordered_map<std::string, std::size_t> str_index;
  const Value* find(const Value& key) const;
  void set(Value key, Value value);  // insert or replace, keeping the original position
};

// Objects with attributes: namespace() and the loop variable.
struct Object {
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;
  virtual Value getattr(const std::string& name) const = 0;
  virtual void setattr(const std::string& name, Value v);
  virtual std::string repr() const = 0;
  virtual bool is_namespace() const { return false; }
};

struct Namespace : Object {
  std::shared_ptr<Dict> attrs = std::make_shared<Dict>();
  std::string type_name() const override { return "Namespace"; }
  Value getattr(const std::string& name) const override;
  void setattr(const std::string& name, Value v) override;
  std::string repr() const override;
  bool is_namespace() const override { return true; }
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // Helpers for builtins: the argument at `index` or named `name`, or `def` when absent.
  const Value* get(std::size_t index, const std::string& name) const;
  Value get_or(std::size_t index, const std::string& name, Value def) const;
  void check_max(std::size_t n_pos, std::initializer_list<const char*> names,
                 const std::string& what) const;
};

struct Callable {
  std::string name;
  std::function<Value(CallArgs&)> fn;
};

// Python semantics of the basic operations (value.cpp).
bool truthy(const Value& v);
std::string to_str(const Value& v);     // str(v); Undefined -> ""
std::string repr(const Value& v);       // repr(v)
std::string type_name(const Value& v);  // Python type name: 'str', 'dict', ...
std::string py_float_repr(double d);
bool py_eq(const Value& a, const Value& b);
int py_compare(const Value& a, const Value& b, const char* op);  // <0, 0, >0; fails on mismatch
bool py_contains(const Value& container, const Value& item);
std::int64_t py_len(const Value& v);
std::vector<Value> iterate(const Value& v);  // list items, dict keys, str code points
Value make_iterator(std::vector<Value> items, const char* view = "generator");
std::vector<std::string> utf8_chars(const std::string& s);
// The code point of one UTF-8 character (as utf8_chars splits them).
std::uint32_t cp_of(const std::string& ch);
Value from_json(const nlohmann::ordered_json& j, int depth = 0);
struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: single line
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonOptions& opt);
void check_size(std::size_t n);   // string / list size against the active limit
std::size_t& max_string_bytes();  // that limit (per thread, set by Template::render)

// Python whitespace (str.strip() with no argument).
bool is_py_space(std::uint32_t cp);
std::string py_strip(const std::string& s, bool left, bool right, const std::string* chars);

// ---------------------------------------------------------------------------------------------
// Tokens and the syntax tree.
enum class Tok : std::uint8_t {
  Data,
  VarBegin,
  VarEnd,
  BlockBegin,
  BlockEnd,
  Name,
  String,
  Int,
  Float,
  Op,
  Eof
};

struct Token {
  Tok type = Tok::Eof;
  std::string value;  // text, name, decoded string, operator
  std::int64_t ival = 0;
  double fval = 0.0;
  std::size_t offset = 0;  // byte offset in the normalised source
};

enum class NK : std::uint8_t {
  // expressions
  Const,
  Name,
  ListLit,
  TupleLit,
  DictLit,
  Getattr,
  Getitem,
  Slice,
  Call,
  Filter,
  Test,
  Neg,
  Pos,
  Not,
  And,
  Or,
  Binary,   // name: + - * / // % **
  Concat,   // ~
  Compare,  // kids[0] op[0] kids[1] op[1] kids[2] ...
  CondExpr,
  NsRef,  // assignment target ns.attr
  // statements
  Output,  // kids: Data / expressions
  Data,
  If,  // kids: cond, body, cond, body, ..., [else body]; has_else
  For,
  Set,
  SetBlock,
  Macro,
  Break,
  Continue,
  Body,  // a list of statements
};

struct Node;
using NodeP = std::unique_ptr<Node>;

struct Node {
  NK kind;
  int line = 0;
  int col = 0;
  std::string name;  // Name, Getattr attribute, Filter/Test name, operator, Macro name, Data text
  Value constant;    // Const
  std::vector<NodeP> kids;
  std::vector<std::string> ops;  // Compare operators; Call/Filter/Test keyword names (see nkw)
  std::size_t nkw = 0;           // Call/Filter/Test: the last nkw kids are keyword arguments
  // For the body of a scope (template, loop body, block set, macro, generation): names the scope
  // assigns at its top level before it reads them. jinja2 binds such a name to the scope, so a
  // nested scope that reads it before the assignment sees Undefined, not the outer value.
  std::vector<std::string> pending;
  bool flag = false;  // If: has else; For: has else; Slice parts present bits in ops
  Node(NK k, int l, int c) : kind(k), line(l), col(c) {}
};

// For: kids = {target, iterable, body, else_body (Body, maybe empty), condition (or null)}
// Set: kids = {target, value}; SetBlock: kids = {target, body, filter chain (or null)}
// Macro: name, ops = parameter names, kids = {body, defaults...} (nkw = number of defaults)
// Slice: kids = {start|null, stop|null, step|null}
// Filter: kids = {operand, args..., kwargs...}; Test likewise; Call: kids = {callee, args...}

struct Parsed {
  NodeP root;
  std::vector<std::size_t> line_starts;  // byte offsets of line starts, for line:column
};

// A syntax error at a byte offset of the normalised source (converted to line:column by parse).
struct SyntaxAt {
  std::size_t offset = 0;
  std::string message;
};
[[noreturn]] void syntax_error(std::size_t offset, std::string message);

// jinja2's source preparation: \r\n and \r become \n, one trailing newline is dropped.
std::string normalize_source(const std::string& source);
// Tokens of a normalised source, with trim_blocks / lstrip_blocks / '-' whitespace control applied.
std::vector<Token> lex(const std::string& src);
// Parses a template; errors are omni::InputError "<origin> line L:C: ...".
Parsed parse(const std::string& source, const Limits& limits, const std::string& origin);

// Line and 1-based column (in code points) of a byte offset.
std::pair<int, int> line_col(const std::vector<std::size_t>& line_starts, const std::string& src,
                             std::size_t offset);

// Names of the builtin filters and tests (builtins.cpp), checked at parse time.
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

// Attribute and item access with jinja2's sandboxed semantics (methods of str/list/dict are
// attributes; a missing key or attribute is Undefined; unsafe methods are Undefined that fail
// when used), slicing, filters and tests (builtins.cpp, filters.cpp).
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step);
Value apply_filter(const std::string& name, const Value& v, CallArgs& args);
bool apply_test(const std::string& name, const Value& v, CallArgs& args);
Value call_value(const Value& fn, CallArgs& args);
Value arith(const std::string& op, const Value& a, const Value& b);
[[noreturn]] void fail_undefined(const Value& u);

}  // namespace omni::jinja::detail
