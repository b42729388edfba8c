// The Jinja parser: jinja2's grammar (jinja2/parser.py) for the supported statements and the full
// expression language, producing the tree in internal.h. Unknown tags, filters and tests, and
// constructs outside the subset, are errors naming line:column.
#include <set>

#include "core/error.h"
#include "modalities/text/jinja/internal.h"

namespace omni::jinja::detail {
namespace {

const std::set<std::string> kUnsupportedTags = {
    "block", "extends",    "include", "import", "from",      "call", "filter",
    "with",  "autoescape", "do",      "trans",  "pluralize", "print"};

class Parser {
 public:
  Parser(std::vector<Token> toks, const Limits& limits) : t_(std::move(toks)), limits_(limits) {}

  NodeP parse_template() {
    NodeP body = subparse({});
    if (cur().type != Tok::Eof) fail_here("unexpected '" + describe(cur()) + "'");
    // jinja2 rejects an unknown filter or test when it compiles the template, except inside an
    // if statement or an inline if (its "soft frames"), where the error waits until it runs.
    for (const auto& u : unknown_) {
      if (!u.soft) syntax_error(u.offset, u.message);
    }
    return body;
  }

 private:
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > p.limits_.max_depth) {
        p.fail_here("template nesting is deeper than the limit of " +
                    std::to_string(p.limits_.max_depth));
      }
    }
    ~DepthGuard() { --p.depth_; }
  };

  // Left-nested chains (a + b + c ..., x.y.z ..., x | f | g ...) build trees as deep as they are
  // long: each link counts as one level of nesting until the function returns.
  struct ChainGuard {
    Parser& p;
    int n = 0;
    explicit ChainGuard(Parser& parser) : p(parser) {}
    void bump() {
      if (++p.depth_ > p.limits_.max_depth) {
        --p.depth_;
        p.fail_here("template nesting is deeper than the limit of " +
                    std::to_string(p.limits_.max_depth));
      }
      ++n;
    }
    ~ChainGuard() { p.depth_ -= n; }
  };

  const Token& cur() const { return t_[i_]; }
  const Token& look() const { return t_[std::min(i_ + 1, t_.size() - 1)]; }
  const Token& next() {
    const Token& tok = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return tok;
  }
  [[noreturn]] void fail_at(const Token& tok, const std::string& msg) {
    syntax_error(tok.offset, msg);
  }
  [[noreturn]] void fail_here(const std::string& msg) { fail_at(cur(), msg); }

  static std::string describe(const Token& tok) {
    switch (tok.type) {
      case Tok::Eof:
        return "end of template";
      case Tok::BlockEnd:
        return "end of statement block";
      case Tok::VarEnd:
        return "end of print statement";
      case Tok::BlockBegin:
        return "begin of statement block";
      case Tok::VarBegin:
        return "begin of print statement";
      case Tok::Data:
        return "template data";
      default:
        return tok.value;
    }
  }

  bool is_name(const char* v) const { return cur().type == Tok::Name && cur().value == v; }
  bool is_op(const char* v) const { return cur().type == Tok::Op && cur().value == v; }
  bool skip_name(const char* v) {
    if (!is_name(v)) return false;
    next();
    return true;
  }
  bool skip_op(const char* v) {
    if (!is_op(v)) return false;
    next();
    return true;
  }
  void expect_op(const char* v) {
    if (!skip_op(v)) fail_here(std::string("expected '") + v + "', got '" + describe(cur()) + "'");
  }
  void expect_block_end() {
    if (cur().type != Tok::BlockEnd) {
      fail_here("expected end of statement block, got '" + describe(cur()) + "'");
    }
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail_here("expected a name, got '" + describe(cur()) + "'");
    return next().value;
  }

  NodeP node(NK k, const Token& at) {
    auto [l, c] = pos_of(at);
    return std::make_unique<Node>(k, l, c);
  }
  std::pair<int, int> pos_of(const Token& at) const {
    // line:column are filled in by parse() from the offset; store the offset for now.
    return {static_cast<int>(at.offset), 0};
  }

  // ---- statements ------------------------------------------------------------------------
  NodeP subparse(const std::set<std::string>& end_tokens) {
    DepthGuard guard(*this);
    NodeP body = node(NK::Body, cur());
    while (true) {
      const Token& tok = cur();
      if (tok.type == Tok::Eof) return body;
      if (tok.type == Tok::Data) {
        NodeP d = node(NK::Data, tok);
        d->name = tok.value;
        body->kids.push_back(std::move(d));
        next();
      } else if (tok.type == Tok::VarBegin) {
        next();
        NodeP out = node(NK::Output, tok);
        out->kids.push_back(parse_tuple(false, true, {}, false, false));
        if (cur().type != Tok::VarEnd) {
          fail_here("expected end of print statement, got '" + describe(cur()) + "'");
        }
        next();
        body->kids.push_back(std::move(out));
      } else if (tok.type == Tok::BlockBegin) {
        next();
        if (cur().type == Tok::Name && end_tokens.count(cur().value)) return body;
        body->kids.push_back(parse_statement());
        expect_block_end();
      } else {
        fail_here("unexpected '" + describe(tok) + "'");
      }
    }
  }

  NodeP parse_statements(const std::set<std::string>& end_tokens, bool drop_needle) {
    skip_op(":");
    expect_block_end();
    NodeP body = subparse(end_tokens);
    if (cur().type == Tok::Eof) {
      std::string names;
      for (const auto& e : end_tokens) names += (names.empty() ? "'" : " or '") + e + "'";
      fail_here("unexpected end of template: missing " + names);
    }
    if (drop_needle) next();
    return body;
  }

  NodeP parse_statement() {
    const Token& tok = cur();
    if (tok.type != Tok::Name) fail_here("tag name expected");
    const std::string& name = tok.value;
    if (name == "for") return parse_for();
    if (name == "if") return parse_if();
    if (name == "set") return parse_set();
    if (name == "macro") return parse_macro();
    if (name == "generation") {
      next();
      NodeP n = node(NK::Body, tok);
      n->flag = true;  // renders its body in a scope of its own, like jinja2's CallBlock
      n->kids.push_back(parse_statements({"endgeneration"}, true));
      return n;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail_here("'" + name + "' outside of a for loop");
      next();
      return node(name == "break" ? NK::Break : NK::Continue, tok);
    }
    if (kUnsupportedTags.count(name)) fail_here("the '" + name + "' tag is not supported");
    fail_here("encountered unknown tag '" + name + "'");
  }

  NodeP parse_for() {
    const Token& at = next();
    NodeP n = node(NK::For, at);
    n->kids.push_back(parse_assign_target({"in"}, false));
    if (!skip_name("in")) fail_here("expected 'in', got '" + describe(cur()) + "'");
    n->kids.push_back(parse_tuple(false, false, {"recursive"}, false, false));
    NodeP cond;
    if (skip_name("if")) cond = parse_expression(true);
    if (is_name("recursive")) fail_here("recursive for loops are not supported");
    ++loop_depth_;
    SoftScope hard(*this, false);  // a loop body is a new (non-soft) frame in jinja2
    n->kids.push_back(parse_statements({"endfor", "else"}, false));
    --loop_depth_;
    if (next().value == "endfor") {
      n->kids.push_back(node(NK::Body, cur()));
    } else {
      n->flag = true;
      int saved = loop_depth_;
      loop_depth_ = 0;  // break/continue in the else branch are outside the loop
      n->kids.push_back(parse_statements({"endfor"}, true));
      loop_depth_ = saved;
    }
    n->kids.push_back(std::move(cond));
    return n;
  }

  NodeP parse_if() {
    SoftScope soft(*this, true);
    const Token& at = next();
    NodeP n = node(NK::If, at);
    n->kids.push_back(parse_tuple(false, false, {}, false, false));
    while (true) {
      n->kids.push_back(parse_statements({"elif", "else", "endif"}, false));
      const Token& tok = next();
      if (tok.value == "elif") {
        n->kids.push_back(parse_tuple(false, false, {}, false, false));
        continue;
      }
      if (tok.value == "else") {
        n->flag = true;
        n->kids.push_back(parse_statements({"endif"}, true));
      }
      break;
    }
    return n;
  }

  NodeP parse_set() {
    const Token& at = next();
    NodeP target = parse_assign_target({}, true);
    if (skip_op("=")) {
      NodeP n = node(NK::Set, at);
      n->kids.push_back(std::move(target));
      n->kids.push_back(parse_tuple(false, true, {}, false, false));
      return n;
    }
    NodeP n = node(NK::SetBlock, at);
    n->kids.push_back(std::move(target));
    NodeP filters;
    if (is_op("|")) filters = parse_filter(nullptr);
    SoftScope hard(*this, false);
    n->kids.push_back(parse_statements({"endset"}, true));
    n->kids.push_back(std::move(filters));
    return n;
  }

  NodeP parse_macro() {
    const Token& at = next();
    NodeP n = node(NK::Macro, at);
    n->name = expect_name();
    expect_op("(");
    std::vector<NodeP> defaults;
    while (!is_op(")")) {
      if (!n->ops.empty()) expect_op(",");
      if (is_op(")")) break;
      n->ops.push_back(expect_name());
      if (skip_op("=")) {
        defaults.push_back(parse_expression(true));
      } else if (!defaults.empty()) {
        fail_here("non-default argument follows default argument");
      }
    }
    expect_op(")");
    int saved = loop_depth_;
    loop_depth_ = 0;
    SoftScope hard(*this, false);
    n->kids.push_back(parse_statements({"endmacro"}, true));
    loop_depth_ = saved;
    n->nkw = defaults.size();
    for (auto& d : defaults) n->kids.push_back(std::move(d));
    return n;
  }

  // The target of {% for %} and {% set %}: a name, a namespace attribute (set only) or a tuple
  // of names.
  NodeP parse_assign_target(const std::set<std::string>& extra_end, bool with_namespace) {
    const Token& at = cur();
    NodeP target = parse_tuple(true, true, extra_end, false, with_namespace);
    if (target->kind == NK::Const) fail_at(at, "can't assign to a constant");
    bool ok = target->kind == NK::Name || target->kind == NK::NsRef;
    if (target->kind == NK::TupleLit) {
      ok = true;
      for (auto& k : target->kids) ok = ok && k->kind == NK::Name;
    }
    if (!ok) fail_at(at, "can't assign to this expression");
    return target;
  }

  // ---- expressions -----------------------------------------------------------------------
  bool is_tuple_end(const std::set<std::string>& extra_end) const {
    if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")")) return true;
    return cur().type == Tok::Name && extra_end.count(cur().value) > 0;
  }

  NodeP parse_tuple(bool simplified, bool with_condexpr, const std::set<std::string>& extra_end,
                    bool explicit_parens, bool with_namespace) {
    const Token& at = cur();
    std::vector<NodeP> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      args.push_back(simplified ? parse_primary(with_namespace) : parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) fail_here("expected an expression, got '" + describe(cur()) + "'");
    }
    NodeP n = node(NK::TupleLit, at);
    n->kids = std::move(args);
    return n;
  }

  NodeP parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  NodeP parse_condexpr() {
    std::size_t mark = unknown_.size();
    NodeP expr1 = parse_or();
    ChainGuard chain(*this);
    while (is_name("if")) {
      chain.bump();
      SoftScope soft(*this, true);
      for (std::size_t i = mark; i < unknown_.size(); ++i) unknown_[i].soft = true;
      const Token& at = next();
      NodeP expr2 = parse_or();
      NodeP expr3;
      if (skip_name("else")) expr3 = parse_condexpr();
      NodeP n = node(NK::CondExpr, at);
      n->kids.push_back(std::move(expr2));
      n->kids.push_back(std::move(expr1));
      n->kids.push_back(std::move(expr3));
      expr1 = std::move(n);
    }
    return expr1;
  }

  NodeP binary(NK k, NodeP l, NodeP r, const Token& at, std::string op = "") {
    NodeP n = node(k, at);
    n->name = std::move(op);
    n->kids.push_back(std::move(l));
    n->kids.push_back(std::move(r));
    return n;
  }

  NodeP parse_or() {
    NodeP left = parse_and();
    ChainGuard chain(*this);
    while (is_name("or")) {
      chain.bump();
      const Token& at = next();
      left = binary(NK::Or, std::move(left), parse_and(), at);
    }
    return left;
  }
  NodeP parse_and() {
    NodeP left = parse_not();
    ChainGuard chain(*this);
    while (is_name("and")) {
      chain.bump();
      const Token& at = next();
      left = binary(NK::And, std::move(left), parse_not(), at);
    }
    return left;
  }
  NodeP parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      const Token& at = next();
      NodeP n = node(NK::Not, at);
      n->kids.push_back(parse_not());
      return n;
    }
    return parse_compare();
  }
  NodeP parse_compare() {
    const Token& at = cur();
    NodeP expr = parse_math1();
    NodeP cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::Op &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
           cur().value == "<=" || cur().value == ">" || cur().value == ">=")) {
        op = next().value;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && look().type == Tok::Name && look().value == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(NK::Compare, at);
        cmp->kids.push_back(std::move(expr));
      }
      cmp->ops.push_back(op);
      cmp->kids.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(expr);
  }
  NodeP parse_math1() {
    NodeP left = parse_concat();
    ChainGuard chain(*this);
    while (is_op("+") || is_op("-")) {
      chain.bump();
      const Token& at = next();
      left = binary(NK::Binary, std::move(left), parse_concat(), at, at.value);
    }
    return left;
  }
  NodeP parse_concat() {
    const Token& at = cur();
    NodeP first = parse_math2();
    if (!is_op("~")) return first;
    NodeP n = node(NK::Concat, at);
    n->kids.push_back(std::move(first));
    while (skip_op("~")) n->kids.push_back(parse_math2());
    return n;
  }
  NodeP parse_math2() {
    NodeP left = parse_pow();
    ChainGuard chain(*this);
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      chain.bump();
      const Token& at = next();
      left = binary(NK::Binary, std::move(left), parse_pow(), at, at.value);
    }
    return left;
  }
  NodeP parse_pow() {
    NodeP left = parse_unary(true);
    ChainGuard chain(*this);
    while (is_op("**")) {
      chain.bump();
      const Token& at = next();
      left = binary(NK::Binary, std::move(left), parse_unary(true), at, "**");
    }
    return left;
  }
  NodeP parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    NodeP n;
    if (is_op("-") || is_op("+")) {
      const Token& at = next();
      n = node(at.value == "-" ? NK::Neg : NK::Pos, at);
      n->kids.push_back(parse_unary(false));
    } else {
      n = parse_primary(false);
    }
    n = parse_postfix(std::move(n));
    if (with_filter) n = parse_filter_expr(std::move(n));
    return n;
  }

  NodeP parse_primary(bool with_namespace) {
    const Token& tok = cur();
    if (tok.type == Tok::Name) {
      next();
      const std::string& v = tok.value;
      if (v == "true" || v == "false" || v == "True" || v == "False") {
        NodeP n = node(NK::Const, tok);
        n->constant = Value::boolean(v == "true" || v == "True");
        return n;
      }
      if (v == "none" || v == "None") {
        NodeP n = node(NK::Const, tok);
        n->constant = Value::none();
        return n;
      }
      if (with_namespace && is_op(".")) {
        next();
        NodeP n = node(NK::NsRef, tok);
        n->name = v;
        n->ops.push_back(expect_name());
        return n;
      }
      NodeP n = node(NK::Name, tok);
      n->name = v;
      return n;
    }
    if (tok.type == Tok::String) {
      std::string s;
      while (cur().type == Tok::String) s += next().value;
      NodeP n = node(NK::Const, tok);
      n->constant = Value::str(std::move(s));
      return n;
    }
    if (tok.type == Tok::Int || tok.type == Tok::Float) {
      next();
      NodeP n = node(NK::Const, tok);
      n->constant = tok.type == Tok::Int ? Value::integer(tok.ival) : Value::real(tok.fval);
      return n;
    }
    if (is_op("(")) {
      DepthGuard guard(*this);
      next();
      NodeP n = parse_tuple(false, true, {}, true, false);
      expect_op(")");
      return n;
    }
    if (is_op("[")) {
      DepthGuard guard(*this);
      NodeP n = node(NK::ListLit, next());
      while (!is_op("]")) {
        if (!n->kids.empty()) expect_op(",");
        if (is_op("]")) break;
        n->kids.push_back(parse_expression(true));
      }
      expect_op("]");
      return n;
    }
    if (is_op("{")) {
      DepthGuard guard(*this);
      NodeP n = node(NK::DictLit, next());
      while (!is_op("}")) {
        if (!n->kids.empty()) expect_op(",");
        if (is_op("}")) break;
        n->kids.push_back(parse_expression(true));
        expect_op(":");
        n->kids.push_back(parse_expression(true));
      }
      expect_op("}");
      return n;
    }
    fail_here("unexpected '" + describe(tok) + "'");
  }

  NodeP parse_postfix(NodeP n) {
    ChainGuard chain(*this);
    while (true) {
      chain.bump();
      if (is_op(".") || is_op("[")) {
        n = parse_subscript(std::move(n));
      } else if (is_op("(")) {
        n = parse_call(std::move(n));
      } else {
        return n;
      }
    }
  }

  NodeP parse_filter_expr(NodeP n) {
    ChainGuard chain(*this);
    while (true) {
      chain.bump();
      if (is_op("|")) {
        n = parse_filter(std::move(n));
      } else if (is_name("is")) {
        n = parse_test(std::move(n));
      } else if (is_op("(")) {
        n = parse_call(std::move(n));
      } else {
        return n;
      }
    }
  }

  NodeP parse_subscript(NodeP obj) {
    DepthGuard guard(*this);
    const Token& tok = next();
    if (tok.value == ".") {
      const Token& attr = next();
      if (attr.type == Tok::Name) {
        NodeP n = node(NK::Getattr, tok);
        n->name = attr.value;
        n->kids.push_back(std::move(obj));
        return n;
      }
      if (attr.type != Tok::Int) fail_at(attr, "expected name or number");
      NodeP n = node(NK::Getitem, tok);
      n->kids.push_back(std::move(obj));
      NodeP k = node(NK::Const, attr);
      k->constant = Value::integer(attr.ival);
      n->kids.push_back(std::move(k));
      return n;
    }
    std::vector<NodeP> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    NodeP n = node(NK::Getitem, tok);
    n->kids.push_back(std::move(obj));
    if (args.size() == 1) {
      n->kids.push_back(std::move(args[0]));
    } else {
      NodeP t = node(NK::TupleLit, tok);
      t->kids = std::move(args);
      n->kids.push_back(std::move(t));
    }
    return n;
  }

  NodeP parse_subscribed() {
    const Token& at = cur();
    std::vector<NodeP> parts;
    if (is_op(":")) {
      next();
      parts.push_back(nullptr);
    } else {
      NodeP e = parse_expression(true);
      if (!is_op(":")) return e;
      next();
      parts.push_back(std::move(e));
    }
    if (is_op(":") || is_op("]") || is_op(",")) {
      parts.push_back(nullptr);
    } else {
      parts.push_back(parse_expression(true));
    }
    if (is_op(":")) {
      next();
      parts.push_back(is_op("]") || is_op(",") ? nullptr : parse_expression(true));
    } else {
      parts.push_back(nullptr);
    }
    NodeP n = node(NK::Slice, at);
    n->kids = std::move(parts);
    return n;
  }

  void parse_call_args(Node& n) {
    expect_op("(");
    std::vector<NodeP> kwargs;
    std::vector<std::string> kwnames;
    bool any = false;
    while (!is_op(")")) {
      if (any) expect_op(",");
      if (is_op(")")) break;
      any = true;
      if (is_op("*") || is_op("**")) fail_here("*args / **kwargs in calls are not supported");
      if (cur().type == Tok::Name && look().type == Tok::Op && look().value == "=") {
        kwnames.push_back(next().value);
        next();
        kwargs.push_back(parse_expression(true));
      } else {
        if (!kwargs.empty()) fail_here("invalid argument syntax (positional after keyword)");
        n.kids.push_back(parse_expression(true));
      }
    }
    expect_op(")");
    n.nkw = kwargs.size();
    n.ops = std::move(kwnames);
    for (auto& k : kwargs) n.kids.push_back(std::move(k));
  }

  NodeP parse_call(NodeP callee) {
    DepthGuard guard(*this);
    NodeP n = node(NK::Call, cur());
    n->kids.push_back(std::move(callee));
    parse_call_args(*n);
    return n;
  }

  NodeP parse_filter(NodeP operand) {
    DepthGuard guard(*this);
    ChainGuard chain(*this);
    while (is_op("|")) {
      chain.bump();
      next();
      const Token& at = cur();
      std::string name = expect_name();
      while (skip_op(".")) {
        name += '.';
        name += expect_name();
      }
      if (!is_known_filter(name)) note_unknown(at, "filter", name);
      NodeP n = node(NK::Filter, at);
      n->name = name;
      n->kids.push_back(std::move(operand));  // may be null for {% set x | f %}
      if (is_op("(")) parse_call_args(*n);
      operand = std::move(n);
    }
    return operand;
  }

  NodeP parse_test(NodeP operand) {
    DepthGuard guard(*this);
    const Token& at = next();  // 'is'
    bool negated = skip_name("not");
    const Token& name_tok = cur();
    std::string name = expect_name();
    while (skip_op(".")) {
      name += '.';
      name += expect_name();
    }
    if (!is_known_test(name)) note_unknown(name_tok, "test", name);
    NodeP n = node(NK::Test, at);
    n->name = name;
    n->kids.push_back(std::move(operand));
    if (is_op("(")) {
      parse_call_args(*n);
    } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                cur().type == Tok::Float || is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail_here("you cannot chain multiple tests with is");
      n->kids.push_back(parse_postfix(parse_primary(false)));
    }
    if (!negated) return n;
    NodeP no = node(NK::Not, at);
    no->kids.push_back(std::move(n));
    return no;
  }

  std::vector<Token> t_;
  std::size_t i_ = 0;
  const Limits& limits_;
  int depth_ = 0;
  int loop_depth_ = 0;
  struct Unknown {
    std::size_t offset;
    std::string message;
    bool soft;
  };
  std::vector<Unknown> unknown_;
  bool soft_ = false;  // inside an if statement / inline if, but not a loop, macro or block set
  struct SoftScope {
    Parser& p;
    bool saved;
    SoftScope(Parser& parser, bool soft) : p(parser), saved(parser.soft_) { p.soft_ = soft; }
    ~SoftScope() { p.soft_ = saved; }
  };
  void note_unknown(const Token& at, const std::string& what, const std::string& name) {
    unknown_.push_back({at.offset, "no " + what + " named '" + name + "' (not supported)", soft_});
  }
};

// jinja2's symbol tracking, reduced to what changes output: for each scope body, the names whose
// first use in the scope (in source order, not looking into nested scopes) is an assignment by a
// top-level statement of the scope ({% set %}, block set, macro). An assignment inside an if
// branch does not count (jinja2 resolves the outer value before the branch).
void scan_loads(const Node& e, std::set<std::string>& seen) {
  if (e.kind == NK::Name) seen.insert(e.name);
  if (e.kind == NK::NsRef) seen.insert(e.name);
  for (const auto& k : e.kids) {
    if (k) scan_loads(*k, seen);
  }
}

void scan_store(const Node& target, bool top, std::set<std::string>& seen,
                std::vector<std::string>& pending) {
  if (target.kind == NK::NsRef) {
    seen.insert(target.name);
    return;
  }
  if (target.kind == NK::TupleLit) {
    for (const auto& k : target.kids) scan_store(*k, top, seen, pending);
    return;
  }
  if (!seen.count(target.name)) {
    seen.insert(target.name);
    if (top) pending.push_back(target.name);
  }
}

void mark_scopes(Node& body, const std::set<std::string>& outer_declared, bool root);

void scan_body(Node& body, bool top, std::set<std::string>& seen, std::vector<std::string>& pending,
               std::vector<Node*>& nested) {
  for (auto& st : body.kids) {
    Node& s = *st;
    switch (s.kind) {
      case NK::Output:
        scan_loads(*s.kids[0], seen);
        break;
      case NK::If:
        for (std::size_t k = 0; k < s.kids.size(); ++k) {
          bool is_body = (k % 2 == 1) || (s.flag && k + 1 == s.kids.size());
          if (is_body)
            scan_body(*s.kids[k], false, seen, pending, nested);
          else
            scan_loads(*s.kids[k], seen);
        }
        break;
      case NK::For:
        scan_loads(*s.kids[1], seen);
        nested.push_back(s.kids[2].get());
        break;
      case NK::Set:
        scan_loads(*s.kids[1], seen);
        scan_store(*s.kids[0], top, seen, pending);
        break;
      case NK::SetBlock:
        nested.push_back(s.kids[1].get());
        scan_store(*s.kids[0], top, seen, pending);
        break;
      case NK::Macro: {
        nested.push_back(s.kids[0].get());
        Node name(NK::Name, 0, 0);
        name.name = s.name;
        scan_store(name, top, seen, pending);
        break;
      }
      case NK::Body:
        if (s.flag) nested.push_back(s.kids[0].get());
        break;
      default:
        break;
    }
  }
}

// A nested scope's pending name is dropped when an enclosing scope uses the name at all: jinja2
// then starts the nested scope's variable from the enclosing one's instead of from "missing".
void mark_scopes(Node& body, const std::set<std::string>& outer_declared, bool root) {
  std::set<std::string> seen;
  std::vector<Node*> nested;
  body.pending.clear();
  scan_body(body, true, seen, body.pending, nested);
  if (!root) {
    std::erase_if(body.pending, [&](const std::string& n) { return outer_declared.count(n) > 0; });
  }
  std::set<std::string> declared = outer_declared;
  declared.insert(seen.begin(), seen.end());
  for (Node* n : nested) mark_scopes(*n, declared, false);
}

// Nodes carry the token's byte offset in `line` until here; convert to line:column.
void fix_positions(Node& n, const std::vector<std::size_t>& ls, const std::string& src) {
  auto [l, c] = line_col(ls, src, static_cast<std::size_t>(n.line));
  n.line = l;
  n.col = c;
  for (auto& k : n.kids) {
    if (k) fix_positions(*k, ls, src);
  }
}

}  // namespace

Parsed parse(const std::string& source, const Limits& limits, const std::string& origin) {
  if (source.size() > limits.max_template_bytes) {
    throw InputError(origin + ": template is " + std::to_string(source.size()) +
                     " bytes, more than the limit of " + std::to_string(limits.max_template_bytes));
  }
  std::string src = normalize_source(source);
  Parsed out;
  out.line_starts.push_back(0);
  for (std::size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\n') out.line_starts.push_back(i + 1);
  }
  try {
    Parser p(lex(src), limits);
    out.root = p.parse_template();
  } catch (const SyntaxAt& e) {
    auto [l, c] = line_col(out.line_starts, src, e.offset);
    throw InputError(origin + " line " + std::to_string(l) + ":" + std::to_string(c) + ": " +
                     e.message);
  }
  fix_positions(*out.root, out.line_starts, src);
  mark_scopes(*out.root, {}, true);
  return out;
}

}  // namespace omni::jinja::detail
