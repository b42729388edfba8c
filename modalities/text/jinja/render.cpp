// Rendering: scopes (jinja2's: a for-loop iteration and a macro call have their own; if/set do
// not), statements, expressions, the loop object and the globals transformers provides.
#include <algorithm>
#include <ctime>

#include "core/error.h"
#include "modalities/text/jinja/internal.h"

namespace omni::jinja {

struct Template::Impl {
  detail::Parsed parsed;
  Limits limits;
  std::string origin;
};

namespace detail {
namespace {

struct Frame {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;
  // Names this scope assigns before reading them (Node::pending): until assigned they are
  // Undefined here and in nested scopes, as jinja2 binds them to this scope.
  const std::vector<std::string>* pending = nullptr;
  const Value* find(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get()) {
      auto it = f->vars.find(name);
      if (it != f->vars.end()) return &it->second;
      if (f->pending &&
          std::find(f->pending->begin(), f->pending->end(), name) != f->pending->end()) {
        return nullptr;
      }
    }
    return nullptr;
  }
};
using FrameP = std::shared_ptr<Frame>;

FrameP child_frame(const FrameP& parent, const Node* scope) {
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  if (scope) f->pending = &scope->pending;
  return f;
}

enum class Flow { Normal, Break, Continue };

struct LoopObj : Object {
  std::int64_t index0 = 0;
  std::int64_t length = 0;
  Value prev, next;
  bool has_prev = false, has_next = false;
  std::string type_name() const override { return "LoopContext"; }
  std::string repr() const override {
    return "<LoopContext " + std::to_string(index0 + 1) + "/" + std::to_string(length) + ">";
  }
  Value getattr(const std::string& name) const override {
    if (name == "index") return Value::integer(index0 + 1);
    if (name == "index0") return Value::integer(index0);
    if (name == "revindex") return Value::integer(length - index0);
    if (name == "revindex0") return Value::integer(length - index0 - 1);
    if (name == "first") return Value::boolean(index0 == 0);
    if (name == "last") return Value::boolean(index0 == length - 1);
    if (name == "length") return Value::integer(length);
    if (name == "depth") return Value::integer(1);
    if (name == "depth0") return Value::integer(0);
    if (name == "previtem") return has_prev ? prev : Value::undefined("there is no previous item");
    if (name == "nextitem") return has_next ? next : Value::undefined("there is no next item");
    if (name == "cycle") {
      std::int64_t i = index0;
      return Value::callable("loop.cycle", [i](CallArgs& a) {
        if (a.pos.empty()) fail("no items for cycling given");
        return a.pos[static_cast<std::size_t>(i) % a.pos.size()];
      });
    }
    if (name == "changed") fail("loop.changed() is not supported");
    return Value::undefined("'LoopContext object' has no attribute '" + name + "'");
  }
};

class Renderer {
 public:
  Renderer(const Template::Impl& t) : t_(t), lim_(t.limits) {}

  std::string run(const nlohmann::ordered_json& context) {
    auto globals = std::make_shared<Frame>();  // the context and the globals
    install_globals(*globals);
    if (!context.is_object() && !context.is_null()) {
      throw InputError(t_.origin + ": the render context must be a JSON object");
    }
    try {
      if (context.is_object()) {
        for (const auto& [k, v] : context.items()) globals->vars[k] = from_json(v);
      }
    } catch (const Fail& f) {
      throw InputError(t_.origin + ": " + f.message);
    }
    FrameP root = child_frame(globals, t_.parsed.root.get());
    root_ = root;
    struct ClearNamespaces {
      Renderer& r;
      ~ClearNamespaces() {
        for (auto& ns : r.namespaces_) ns->attrs->items.clear(), ns->attrs->str_index.clear();
        r.namespaces_.clear();
      }
    } clear_namespaces{*this};
    std::string out;
    std::size_t saved = max_string_bytes();
    max_string_bytes() = lim_.max_output_bytes;
    try {
      exec_body(*t_.parsed.root, root, out);
    } catch (const Located& e) {
      max_string_bytes() = saved;
      std::string where =
          t_.origin + " line " + std::to_string(e.line) + ":" + std::to_string(e.col);
      if (e.raised) throw InputError(where + ": raise_exception: " + e.message);
      throw InputError(where + ": " + e.message);
    } catch (const Fail& e) {
      max_string_bytes() = saved;
      throw InputError(t_.origin + ": " + e.message);
    } catch (...) {
      max_string_bytes() = saved;
      throw;
    }
    max_string_bytes() = saved;
    return out;
  }

 private:
  struct Depth {
    Renderer& r;
    const Node& n;
    Depth(Renderer& rr, const Node& nn) : r(rr), n(nn) {
      if (++r.depth_ > r.lim_.max_depth) {
        --r.depth_;
        throw Located{n.line, n.col,
                      "rendering is nested deeper than the limit of " +
                          std::to_string(r.lim_.max_depth) + " (recursion?)"};
      }
    }
    ~Depth() { --r.depth_; }
  };

  void install_globals(Frame& f) {
    const Limits& lim = lim_;
    f.vars["raise_exception"] = Value::callable("raise_exception", [](CallArgs& a) -> Value {
      std::string msg = a.pos.empty() ? "" : to_str(a.pos[0]);
      throw Located{0, 0, msg, true};
    });
    f.vars["strftime_now"] = Value::callable("strftime_now", [](CallArgs& a) {
      if (a.pos.size() != 1 || a.pos[0].kind != Kind::Str)
        fail("strftime_now(format) takes one string");
      std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[512];
      std::size_t n = std::strftime(buf, sizeof(buf), a.pos[0].s.c_str(), &tm);
      return Value::str(std::string(buf, n));
    });
    f.vars["namespace"] = Value::callable("namespace", [this](CallArgs& a) {
      auto ns = std::make_shared<Namespace>();
      namespaces_.push_back(ns);  // cleared after the render: a namespace may hold itself
      if (a.pos.size() > 1) fail("namespace() takes at most one positional argument");
      if (!a.pos.empty()) {
        if (a.pos[0].kind != Kind::Dict) fail("namespace() positional argument must be a dict");
        for (const auto& [k, v] : a.pos[0].dict->items) ns->setattr(to_str(k), v);
      }
      for (const auto& [k, v] : a.kw) ns->setattr(k, v);
      return Value::object(ns);
    });
    f.vars["dict"] = Value::callable("dict", [](CallArgs& a) {
      auto d = std::make_shared<Dict>();
      if (a.pos.size() > 1) fail("dict expected at most 1 argument");
      if (!a.pos.empty()) {
        const Value& src = a.pos[0];
        if (src.kind == Kind::Dict) {
          for (const auto& [k, v] : src.dict->items) d->set(k, v);
        } else {
          for (const Value& pair : iterate(src)) {
            std::vector<Value> kv = iterate(pair);
            if (kv.size() != 2) fail("dictionary update sequence element has the wrong length");
            d->set(kv[0], kv[1]);
          }
        }
      }
      for (const auto& [k, v] : a.kw) d->set(Value::str(k), v);
      return Value::make_dict(d);
    });
    f.vars["range"] = Value::callable("range", [&lim](CallArgs& a) {
      if (!a.kw.empty() || a.pos.empty() || a.pos.size() > 3) fail("range() takes 1 to 3 integers");
      std::int64_t v[3] = {0, 0, 1};
      for (std::size_t i = 0; i < a.pos.size(); ++i) {
        if (a.pos[i].kind != Kind::Int && a.pos[i].kind != Kind::Bool) {
          fail("'" + type_name(a.pos[i]) + "' object cannot be interpreted as an integer");
        }
      }
      auto iv = [&](std::size_t i) {
        return a.pos[i].kind == Kind::Bool ? a.pos[i].b : a.pos[i].i;
      };
      if (a.pos.size() == 1) {
        v[1] = iv(0);
      } else {
        v[0] = iv(0);
        v[1] = iv(1);
        if (a.pos.size() == 3) v[2] = iv(2);
      }
      if (v[2] == 0) fail("range() arg 3 must not be zero");
      std::vector<Value> out;
      for (std::int64_t x = v[0]; v[2] > 0 ? x < v[1] : x > v[1]; x += v[2]) {
        if (out.size() >= lim.max_range) {
          fail("Range too big. The sandbox blocks ranges larger than " +
               std::to_string(lim.max_range) + ".");
        }
        out.push_back(Value::integer(x));
        if ((v[2] > 0 && x > INT64_MAX - v[2]) || (v[2] < 0 && x < INT64_MIN - v[2])) break;
      }
      Value r = Value::make_list(std::move(out));
      const_cast<List&>(*r.list).view = "range";
      const_cast<List&>(*r.list).range_repr =
          "range(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) +
          (v[2] != 1 ? ", " + std::to_string(v[2]) : std::string()) + ")";
      return r;
    });
  }

  // ---- statements ------------------------------------------------------------------------
  void emit(std::string& out, const std::string& s, const Node& at) {
    if (out.size() + s.size() > lim_.max_output_bytes) {
      throw Located{at.line, at.col,
                    "the rendered text exceeds the limit of " +
                        std::to_string(lim_.max_output_bytes) + " bytes"};
    }
    out += s;
  }

  Flow exec_body(const Node& body, const FrameP& f, std::string& out) {
    Depth d(*this, body);
    for (const auto& st : body.kids) {
      Flow fl = exec(*st, f, out);
      if (fl != Flow::Normal) return fl;
    }
    return Flow::Normal;
  }

  Flow exec(const Node& n, const FrameP& f, std::string& out) {
    switch (n.kind) {
      case NK::Data:
        emit(out, n.name, n);
        return Flow::Normal;
      case NK::Output: {
        Value v = eval(*n.kids[0], f);
        std::string s;
        try {
          s = to_str(v);
        } catch (const Fail& e) {
          throw Located{n.kids[0]->line, n.kids[0]->col, e.message};
        }
        emit(out, s, n);
        return Flow::Normal;
      }
      case NK::Body: {
        if (!n.flag) return exec_body(n, f, out);
        exec_body(*n.kids[0], child_frame(f, n.kids[0].get()), out);
        return Flow::Normal;
      }
      case NK::If: {
        std::size_t k = 0;
        for (; k + 1 < n.kids.size(); k += 2) {
          if (truthy(eval(*n.kids[k], f))) return exec_body(*n.kids[k + 1], f, out);
        }
        if (n.flag) return exec_body(*n.kids.back(), f, out);
        return Flow::Normal;
      }
      case NK::For:
        return exec_for(n, f, out);
      case NK::Set: {
        Value v = eval(*n.kids[1], f);
        assign(*n.kids[0], v, f);
        return Flow::Normal;
      }
      case NK::SetBlock: {
        std::string captured;
        exec_body(*n.kids[1], child_frame(f, n.kids[1].get()), captured);
        Value v = Value::str(std::move(captured));
        if (n.kids[2]) v = eval_filter_chain(*n.kids[2], v, f);
        assign(*n.kids[0], v, f);
        return Flow::Normal;
      }
      case NK::Macro: {
        f->vars[n.name] = make_macro(n, f);
        return Flow::Normal;
      }
      case NK::Break:
        return Flow::Break;
      case NK::Continue:
        return Flow::Continue;
      default:
        throw Located{n.line, n.col, "unexpected statement"};
    }
  }

  Flow exec_for(const Node& n, const FrameP& f, std::string& out) {
    Value iterable = eval(*n.kids[1], f);
    std::vector<Value> items;
    try {
      items = iterate(iterable);
    } catch (const Fail& e) {
      throw Located{n.kids[1]->line, n.kids[1]->col, e.message};
    }
    const Node& target = *n.kids[0];
    const Node* cond = n.kids[4].get();
    if (cond) {
      std::vector<Value> kept;
      for (auto& item : items) {
        count_iteration(n);
        auto tmp = std::make_shared<Frame>();
        tmp->parent = f;
        assign(target, item, tmp);
        if (truthy(eval(*cond, tmp))) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (n.flag) return exec_body(*n.kids[3], f, out);
      return Flow::Normal;
    }
    auto len = static_cast<std::int64_t>(items.size());
    for (std::int64_t i = 0; i < len; ++i) {
      count_iteration(n);
      auto loop = std::make_shared<LoopObj>();
      loop->index0 = i;
      loop->length = len;
      if (i > 0) {
        loop->prev = items[static_cast<std::size_t>(i - 1)];
        loop->has_prev = true;
      }
      if (i + 1 < len) {
        loop->next = items[static_cast<std::size_t>(i + 1)];
        loop->has_next = true;
      }
      FrameP frame = child_frame(f, n.kids[2].get());
      frame->vars["loop"] = Value::object(loop);
      assign(target, items[static_cast<std::size_t>(i)], frame);
      Flow fl = exec_body(*n.kids[2], frame, out);
      if (fl == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void count_iteration(const Node& n) {
    if (++iterations_ > lim_.max_loop_iterations) {
      throw Located{n.line, n.col,
                    "more than " + std::to_string(lim_.max_loop_iterations) +
                        " loop iterations in one render (limit)"};
    }
  }

  void assign(const Node& target, const Value& v, const FrameP& f) {
    if (target.kind == NK::Name) {
      f->vars[target.name] = v;
      return;
    }
    if (target.kind == NK::NsRef) {
      const Value* ns = f->find(target.name);
      if (!ns || ns->kind != Kind::Object || !ns->obj->is_namespace()) {
        throw Located{target.line, target.col, "cannot assign attribute on non-namespace object"};
      }
      try {
        ns->obj->setattr(target.ops[0], v);
      } catch (const Fail& e) {
        throw Located{target.line, target.col, e.message};
      }
      return;
    }
    // tuple unpacking
    std::vector<Value> items;
    try {
      items = iterate(v);
    } catch (const Fail& e) {
      throw Located{target.line, target.col, "cannot unpack: " + e.message};
    }
    if (items.size() != target.kids.size()) {
      throw Located{
          target.line, target.col,
          items.size() > target.kids.size()
              ? "too many values to unpack (expected " + std::to_string(target.kids.size()) + ")"
              : "not enough values to unpack (expected " + std::to_string(target.kids.size()) +
                    ", got " + std::to_string(items.size()) + ")"};
    }
    for (std::size_t i = 0; i < items.size(); ++i) assign(*target.kids[i], items[i], f);
  }

  Value make_macro(const Node& n, const FrameP& defining) {
    const Node* node = &n;
    // weak: the defining frame holds the macro (a shared_ptr would be a cycle)
    std::weak_ptr<Frame> closure = defining;
    return Value::callable(n.name, [this, node, closure](CallArgs& a) {
      FrameP parent = closure.lock();
      if (!parent) fail("macro '" + node->name + "' called outside the scope it was defined in");
      const auto& params = node->ops;
      if (a.pos.size() > params.size()) {
        fail("macro '" + node->name + "' takes not more than " + std::to_string(params.size()) +
             " argument(s)");
      }
      FrameP frame = child_frame(parent, node->kids[0].get());
      std::size_t first_default = params.size() - node->nkw;
      for (std::size_t i = 0; i < params.size(); ++i) {
        const Value* v = i < a.pos.size() ? &a.pos[i] : nullptr;
        for (const auto& [k, x] : a.kw) {
          if (k == params[i]) {
            if (v) fail("macro '" + node->name + "' got multiple values for argument '" + k + "'");
            v = &x;
          }
        }
        if (v) {
          frame->vars[params[i]] = *v;
        } else if (i >= first_default) {
          frame->vars[params[i]] = eval(*node->kids[1 + i - first_default], frame);
        } else {
          frame->vars[params[i]] =
              Value::undefined("parameter '" + params[i] + "' was not provided");
        }
      }
      for (const auto& [k, x] : a.kw) {
        if (std::find(params.begin(), params.end(), k) == params.end()) {
          fail("macro '" + node->name + "' was invoked with an unknown keyword argument '" + k +
               "'");
        }
      }
      std::string out;
      exec_body(*node->kids[0], frame, out);
      return Value::str(std::move(out));
    });
  }

  // ---- expressions -----------------------------------------------------------------------
  CallArgs eval_args(const Node& n, std::size_t first, const FrameP& f) {
    CallArgs a;
    std::size_t npos = n.kids.size() - first - n.nkw;
    for (std::size_t i = 0; i < npos; ++i) a.pos.push_back(eval(*n.kids[first + i], f));
    for (std::size_t i = 0; i < n.nkw; ++i) {
      a.kw.emplace_back(n.ops[i], eval(*n.kids[first + npos + i], f));
    }
    return a;
  }

  Value eval_filter_chain(const Node& n, const Value& innermost, const FrameP& f) {
    const Node* inner = n.kids[0].get();
    Value operand = !inner                      ? innermost
                    : inner->kind == NK::Filter ? eval_filter_chain(*inner, innermost, f)
                                                : eval(*inner, f);
    CallArgs a = eval_args(n, 1, f);
    try {
      return apply_filter(n.name, operand, a);
    } catch (const Fail& e) {
      throw Located{n.line, n.col, e.message};
    }
  }

  Value eval(const Node& n, const FrameP& f) {
    Depth d(*this, n);
    try {
      return eval_inner(n, f);
    } catch (const Fail& e) {
      throw Located{n.line, n.col, e.message};
    } catch (Located& e) {
      if (e.line == 0) {
        e.line = n.line;
        e.col = n.col;
      }
      throw;
    }
  }

  Value eval_inner(const Node& n, const FrameP& f) {
    switch (n.kind) {
      case NK::Const:
        return n.constant;
      case NK::Name: {
        const Value* v = f->find(n.name);
        return v ? *v : Value::undefined("'" + n.name + "' is undefined");
      }
      case NK::ListLit:
      case NK::TupleLit: {
        std::vector<Value> items;
        for (const auto& k : n.kids) items.push_back(eval(*k, f));
        return Value::make_list(std::move(items), n.kind == NK::TupleLit);
      }
      case NK::DictLit: {
        auto d = std::make_shared<Dict>();
        for (std::size_t i = 0; i + 1 < n.kids.size(); i += 2) {
          Value k = eval(*n.kids[i], f);
          d->set(std::move(k), eval(*n.kids[i + 1], f));
        }
        return Value::make_dict(d);
      }
      case NK::Getattr:
        return get_attr(eval(*n.kids[0], f), n.name);
      case NK::Getitem: {
        Value obj = eval(*n.kids[0], f);
        const Node& key = *n.kids[1];
        if (key.kind == NK::Slice) {
          if (obj.is_undefined()) fail_undefined(obj);
          auto part = [&](std::size_t i) {
            return key.kids[i] ? eval(*key.kids[i], f) : Value::none();
          };
          Value a = part(0), b = part(1), c = part(2);
          // jinja2 slices with Python's own subscript (not the sandbox's getitem): errors raise
          if (obj.kind != Kind::Str && obj.kind != Kind::List) {
            fail("'" + type_name(obj) + "' object is not subscriptable");
          }
          return slice_value(obj, a, b, c);
        }
        return get_item(obj, eval(key, f));
      }
      case NK::Call: {
        Value callee = eval(*n.kids[0], f);
        CallArgs a = eval_args(n, 1, f);
        return call_value(callee, a);
      }
      case NK::Filter:
        return eval_filter_chain(n, Value(), f);
      case NK::Test: {
        Value v = eval(*n.kids[0], f);
        CallArgs a = eval_args(n, 1, f);
        return Value::boolean(apply_test(n.name, v, a));
      }
      case NK::Neg:
      case NK::Pos: {
        Value v = eval(*n.kids[0], f);
        if (v.is_undefined()) fail_undefined(v);
        if (n.kind == NK::Pos) {
          if (!v.is_number()) fail("bad operand type for unary +: '" + type_name(v) + "'");
          return v.kind == Kind::Bool ? Value::integer(v.b) : v;
        }
        if (v.kind == Kind::Float) return Value::real(-v.f);
        if (v.kind == Kind::Int || v.kind == Kind::Bool) return arith("-", Value::integer(0), v);
        fail("bad operand type for unary -: '" + type_name(v) + "'");
      }
      case NK::Not:
        return Value::boolean(!truthy(eval(*n.kids[0], f)));
      case NK::And: {
        Value l = eval(*n.kids[0], f);
        return truthy(l) ? eval(*n.kids[1], f) : l;
      }
      case NK::Or: {
        Value l = eval(*n.kids[0], f);
        return truthy(l) ? l : eval(*n.kids[1], f);
      }
      case NK::Binary:
        return arith(n.name, eval(*n.kids[0], f), eval(*n.kids[1], f));
      case NK::Concat: {
        std::string s;
        for (const auto& k : n.kids) {
          s += to_str(eval(*k, f));
          check_size(s.size());
        }
        return Value::str(std::move(s));
      }
      case NK::Compare: {
        Value left = eval(*n.kids[0], f);
        for (std::size_t i = 0; i < n.ops.size(); ++i) {
          Value right = eval(*n.kids[i + 1], f);
          const std::string& op = n.ops[i];
          bool r;
          if (op == "==")
            r = py_eq(left, right);
          else if (op == "!=")
            r = !py_eq(left, right);
          else if (op == "in")
            r = py_contains(right, left);
          else if (op == "notin")
            r = !py_contains(right, left);
          else {
            int c = py_compare(left, right, op.c_str());
            r = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
          }
          if (!r) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case NK::CondExpr: {
        if (truthy(eval(*n.kids[0], f))) return eval(*n.kids[1], f);
        if (n.kids[2]) return eval(*n.kids[2], f);
        return Value::undefined("the inline if-expression evaluated to false and has no else");
      }
      default:
        fail("unexpected expression");
    }
  }

  const Template::Impl& t_;
  const Limits& lim_;
  FrameP root_;
  std::vector<std::shared_ptr<Namespace>> namespaces_;
  int depth_ = 0;
  std::uint64_t iterations_ = 0;
};

}  // namespace
}  // namespace detail

Template::Template(const std::string& source, Limits limits, std::string origin) {
  auto impl = std::make_shared<Impl>();
  impl->limits = limits;
  impl->origin = std::move(origin);
  impl->parsed = detail::parse(source, impl->limits, impl->origin);
  impl_ = std::move(impl);
}

std::string Template::render(const nlohmann::ordered_json& context) const {
  detail::Renderer r(*impl_);
  return r.run(context);
}

std::string render(const std::string& source, const nlohmann::ordered_json& context,
                   const Limits& limits) {
  return Template(source, limits).render(context);
}

}  // namespace omni::jinja
