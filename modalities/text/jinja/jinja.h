// A small, self-contained interpreter of the Jinja subset that Hugging Face chat templates use
// (the Qwen2 / Qwen2-VL / Qwen2.5-VL / Qwen2.5-Omni / Qwen3 templates and their relatives).
//
// It renders like the environment transformers builds in `_compile_jinja_template`
// (transformers/utils/chat_template_utils.py): jinja2's ImmutableSandboxedEnvironment with
// trim_blocks=True, lstrip_blocks=True, the loopcontrols extension ({% break %}, {% continue %}),
// the {% generation %} tag (rendered as its body), a `tojson` filter that is Python's json.dumps
// (ensure_ascii=False, no HTML escaping; indent / separators / sort_keys accepted), and the globals
// raise_exception(msg), strftime_now(fmt), namespace(...), dict(...), range(...).
//
// Supported: text, {{ }}, {% %}, {# #} with whitespace control (-, +), {% raw %};
// if/elif/else, for (tuple unpacking, `if` filter, else, loop.index/index0/revindex/revindex0/
// first/last/length/previtem/nextitem/depth, loop.cycle), set (names, tuples, namespace attributes,
// block set with filters), macro (positional/keyword parameters with defaults), break/continue,
// generation; expressions: literals (strings with Python escapes, ints incl. 0x/0o/0b, floats,
// true/false/none in any case, lists, tuples, dicts), and/or/not, comparisons (chained),
// in / not in, is / is not tests, + - * / // % ** ~, unary -/+, a if b else c, attribute /
// subscript / slices (negative, steps), calls with keyword arguments, filters. The str/dict/list
// methods are listed in builtins.cpp, the filters and tests in filters.cpp.
//
// Semantics follow jinja2 3.1 + Python: scoping (a for-loop iteration and a macro call have their
// own scope, so `set` in a loop does not leak; namespace() does), Python's str()/repr() of values
// (floats as repr, 'single' quotes, True/None), integer floor division and modulo, string
// comparison by code point, dict insertion order. Values are JSON (nlohmann::ordered_json in the
// context) plus undefined, tuples, namespaces, the loop object, macros and builtin callables.
// Undefined behaves as jinja2's default Undefined: it prints as "", is false, iterates as empty,
// has length 0, equals only Undefined, and raises on attribute access, arithmetic and calls.
// map/select/reject/unique/items/reverse return generators as in jinja2: always true, no length,
// not printable, consumed once (a second |list is empty). An unknown filter or test is a parse
// error, except inside an if statement or inline if, where (as in jinja2) it fails only if it runs.
//
// Anything outside the subset ({% extends %}, {% include %}, {% call %}, {% filter %}, other
// filters such as |batch, str.format, `%` formatting, an unsafe method such as list.append when
// called, printing a value whose Python repr it cannot reproduce such as a function or a dict view,
// integers beyond 64 bits) is an omni::InputError naming the template line:column; it never
// renders a string that differs from jinja2's. Errors a template raises on purpose
// (raise_exception) are omni::InputError too, "...: raise_exception: <the template's message>".
//
// Limits (each a clear InputError when exceeded; see Limits): template size, nesting depth of the
// parser and of evaluation (expressions, blocks, macro calls), total loop iterations, range()
// size, and the length of the output and of any string or list built while rendering.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace omni::jinja {

struct Limits {
  std::size_t max_template_bytes = 1 << 20;       // 1 MiB of template source
  int max_depth = 256;                            // nesting of expressions, blocks and macro calls
  std::uint64_t max_loop_iterations = 1'000'000;  // all for-loop iterations of one render
  std::size_t max_output_bytes = 16 << 20;  // the rendered text and any string built on the way
  std::size_t max_range = 100'000;          // largest range() (jinja2's sandbox MAX_RANGE)
};

// A parsed template. Parsing checks the syntax and every filter/test name; render() may still
// raise for runtime problems (undefined attribute of an undefined value, raise_exception, limits).
// A Template is immutable and may be rendered from several threads at once.
class Template {
 public:
  // Throws omni::InputError "chat template line L:C: ..." for syntax errors and unsupported
  // constructs. `origin` names the template in messages (e.g. the file it came from).
  explicit Template(const std::string& source, Limits limits = {},
                    std::string origin = "chat template");
  std::string render(const nlohmann::ordered_json& context) const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// Parse and render in one call.
std::string render(const std::string& source, const nlohmann::ordered_json& context,
                   const Limits& limits = {});

}  // namespace omni::jinja
