// The Jinja lexer: jinja2's rules for the environment transformers uses (trim_blocks=True,
// lstrip_blocks=True, default delimiters), read from jinja2/lexer.py and reproduced here:
//  - the source's \r\n and \r become \n and a single trailing newline is dropped;
//  - `{%-` / `{{-` / `{#-` strip all whitespace before the tag, `-%}` / `-}}` / `-#}` all after;
//  - trim_blocks: one newline directly after `%}` or `#}` is removed (not after `}}`, not `+%}`);
//  - lstrip_blocks: spaces and tabs from the start of a line up to `{%` / `{#` are removed (not
//    for `{{`, not for `{%+`);
//  - inside a tag, `}}` / `%}` only end it when every bracket opened in it is closed.
#include <algorithm>
#include <cctype>
#include <cstring>

#include "modalities/text/jinja/internal.h"

namespace omni::jinja::detail {

void syntax_error(std::size_t offset, std::string message) {
  throw SyntaxAt{offset, std::move(message)};
}

std::string normalize_source(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      out += '\n';
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      out += s[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

namespace {

// Decodes the UTF-8 code point at s[i]; sets len. Invalid bytes decode as themselves (len 1).
std::uint32_t decode_at(const std::string& s, std::size_t i, std::size_t& len) {
  auto c = static_cast<unsigned char>(s[i]);
  len = 1;
  if (c < 0x80) return c;
  int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
  if (extra == 0) return c;
  std::uint32_t cp = c & (0x3F >> extra);
  for (int k = 1; k <= extra; ++k) {
    if (i + k >= s.size()) return c;
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return c;
    cp = (cp << 6) | (cc & 0x3F);
  }
  len = static_cast<std::size_t>(extra) + 1;
  return cp;
}

// Length of the run of Python whitespace starting at i.
std::size_t space_run(const std::string& s, std::size_t i) {
  std::size_t start = i;
  while (i < s.size()) {
    std::size_t len = 0;
    std::uint32_t cp = decode_at(s, i, len);
    if (!is_py_space(cp)) break;
    i += len;
  }
  return i - start;
}

bool all_space(const std::string& s, std::size_t from) {
  return from + space_run(s, from) == s.size();
}

std::string rstrip_space(const std::string& s) {
  std::size_t i = 0, keep = 0;
  while (i < s.size()) {
    std::size_t len = 0;
    std::uint32_t cp = decode_at(s, i, len);
    i += len;
    if (!is_py_space(cp)) keep = i;
  }
  return s.substr(0, keep);
}

// jinja2's OptionalLStrip: the text before a tag, given the tag's sign and kind.
void strip_before(std::string& text, char sign, bool is_variable, bool line_starting) {
  if (sign == '-') {
    text = rstrip_space(text);
  } else if (sign != '+' && !is_variable) {
    std::size_t nl = text.rfind('\n');
    std::size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if ((l_pos > 0 || line_starting) && l_pos < text.size() && all_space(text, l_pos)) {
      text.resize(l_pos);
    }
  }
}

bool starts(const std::string& s, std::size_t pos, const char* lit) {
  return s.compare(pos, std::strlen(lit), lit) == 0;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string& out, std::uint32_t cp, std::size_t offset) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    syntax_error(offset, "string literal escape gives a code point that is not valid UTF-8");
  }
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Python's "unicode-escape" decoding of a string literal body (what jinja2 applies).
std::string decode_string(const std::string& raw, std::size_t offset) {
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i + 1 >= raw.size()) syntax_error(offset, "string literal ends with a backslash");
    char e = raw[++i];
    switch (e) {
      case '\n':
        break;  // line continuation
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
      case 'u':
      case 'U': {
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        std::uint32_t cp = 0;
        for (int k = 0; k < digits; ++k) {
          int h = i + 1 < raw.size() ? hex_digit(raw[i + 1]) : -1;
          if (h < 0)
            syntax_error(offset, std::string("truncated \\") + e + " escape in string literal");
          cp = cp * 16 + static_cast<std::uint32_t>(h);
          ++i;
        }
        append_utf8(out, cp, offset);
        break;
      }
      case 'N':
        syntax_error(offset, "\\N{...} escapes in string literals are not supported");
      default:
        if (e >= '0' && e <= '7') {
          std::uint32_t cp = static_cast<std::uint32_t>(e - '0');
          for (int k = 0; k < 2 && i + 1 < raw.size() && raw[i + 1] >= '0' && raw[i + 1] <= '7';
               ++k) {
            cp = cp * 8 + static_cast<std::uint32_t>(raw[++i] - '0');
          }
          append_utf8(out, cp, offset);
        } else if (static_cast<unsigned char>(e) >= 0x80) {
          syntax_error(offset, "a backslash before a non-ASCII character is not supported");
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(const std::string& src) : s_(src) {}

  std::vector<Token> run() {
    std::size_t n = s_.size();
    while (pos_ < n) {
      std::size_t t = pos_;
      int kind = 0;  // 1 variable, 2 block, 3 comment
      while (true) {
        t = s_.find('{', t);
        if (t == std::string::npos || t + 1 >= n) {
          t = std::string::npos;
          break;
        }
        char c = s_[t + 1];
        if (c == '{') kind = 1;
        if (c == '%') kind = 2;
        if (c == '#') kind = 3;
        if (kind != 0) break;
        ++t;
      }
      if (t == std::string::npos) {
        data(s_.substr(pos_), pos_);
        break;
      }
      std::size_t after = t + 2;
      char sign = 0;
      if (after < n && (s_[after] == '-' || s_[after] == '+')) sign = s_[after++];
      std::string text = s_.substr(pos_, t - pos_);
      std::size_t raw_end = kind == 2 ? raw_begin(after) : std::string::npos;
      strip_before(text, sign, kind == 1, line_starting_);
      data(std::move(text), pos_);
      line_starting_ = false;
      if (raw_end != std::string::npos) {
        raw(t, raw_end);
      } else if (kind == 3) {
        comment(t, after);
      } else {
        tag(t, after, kind == 2);
      }
    }
    out_.push_back(Token{Tok::Eof, "", 0, 0.0, s_.size()});
    return std::move(out_);
  }

 private:
  void data(std::string text, std::size_t offset) {
    if (!text.empty()) out_.push_back(Token{Tok::Data, std::move(text), 0, 0.0, offset});
  }

  // `{%[-+]?\s*raw\s*(-%}\s*|%})` at the position after `{%` and its sign: the end offset.
  std::size_t raw_begin(std::size_t after) {
    std::size_t p = after + space_run(s_, after);
    if (!starts(s_, p, "raw")) return std::string::npos;
    p += 3;
    p += space_run(s_, p);
    if (starts(s_, p, "-%}")) return p + 3 + space_run(s_, p + 3);
    if (starts(s_, p, "%}")) return p + 2;
    return std::string::npos;
  }

  void raw(std::size_t begin, std::size_t content) {
    line_starting_ = content > 0 && s_[content - 1] == '\n';
    std::size_t p = content;
    while (true) {
      p = s_.find("{%", p);
      if (p == std::string::npos) syntax_error(begin, "missing end of raw directive");
      std::size_t q = p + 2;
      char sign = 0;
      if (q < s_.size() && (s_[q] == '-' || s_[q] == '+')) sign = s_[q++];
      q += space_run(s_, q);
      if (starts(s_, q, "endraw")) {
        q += 6;
        q += space_run(s_, q);
        std::size_t end = std::string::npos;
        if (starts(s_, q, "+%}"))
          end = q + 3;
        else if (starts(s_, q, "-%}"))
          end = q + 3 + space_run(s_, q + 3);
        else if (starts(s_, q, "%}"))
          end = q + 2 + (q + 2 < s_.size() && s_[q + 2] == '\n');
        if (end != std::string::npos) {
          std::string text = s_.substr(content, p - content);
          strip_before(text, sign, false, line_starting_);
          data(std::move(text), content);
          line_starting_ = s_[end - 1] == '\n';
          pos_ = end;
          return;
        }
      }
      p += 2;
    }
  }

  void comment(std::size_t begin, std::size_t content) {
    std::size_t q = s_.find("#}", content);
    if (q == std::string::npos) syntax_error(begin, "missing end of comment tag");
    std::size_t end = q + 2;
    if (q > content && s_[q - 1] == '-') {
      end += space_run(s_, end);
    } else if (q > content && s_[q - 1] == '+') {
      // keep what follows
    } else if (end < s_.size() && s_[end] == '\n') {
      ++end;
    }
    line_starting_ = s_[end - 1] == '\n';
    pos_ = end;
  }

  void tag(std::size_t begin, std::size_t p, bool block) {
    out_.push_back(Token{block ? Tok::BlockBegin : Tok::VarBegin, "", 0, 0.0, begin});
    std::vector<char> balance;
    const std::size_t n = s_.size();
    while (true) {
      if (p >= n) {
        syntax_error(begin, block ? "unexpected end of template, expected '%}'"
                                  : "unexpected end of template, expected '}}'");
      }
      if (balance.empty()) {
        std::size_t end = std::string::npos;
        if (block) {
          if (starts(s_, p, "+%}"))
            end = p + 3;
          else if (starts(s_, p, "-%}"))
            end = p + 3 + space_run(s_, p + 3);
          else if (starts(s_, p, "%}"))
            end = p + 2 + (p + 2 < n && s_[p + 2] == '\n');
        } else {
          if (starts(s_, p, "-}}"))
            end = p + 3 + space_run(s_, p + 3);
          else if (starts(s_, p, "}}"))
            end = p + 2;
        }
        if (end != std::string::npos) {
          out_.push_back(Token{block ? Tok::BlockEnd : Tok::VarEnd, "", 0, 0.0, p});
          line_starting_ = s_[end - 1] == '\n';
          pos_ = end;
          return;
        }
      }
      std::size_t ws = space_run(s_, p);
      if (ws > 0) {
        p += ws;
        continue;
      }
      char c = s_[p];
      if (c >= '0' && c <= '9') {
        p = number(p);
      } else if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        std::size_t q = p;
        while (q < n && (s_[q] == '_' || std::isalnum(static_cast<unsigned char>(s_[q])))) ++q;
        out_.push_back(Token{Tok::Name, s_.substr(p, q - p), 0, 0.0, p});
        p = q;
      } else if (c == '\'' || c == '"') {
        std::size_t q = p + 1;
        while (q < n && s_[q] != c) q += s_[q] == '\\' ? 2 : 1;
        if (q >= n)
          syntax_error(p, std::string("unexpected char '") + c + "' (unterminated string)");
        out_.push_back(
            Token{Tok::String, decode_string(s_.substr(p + 1, q - p - 1), p), 0, 0.0, p});
        p = q + 1;
      } else {
        static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
        std::string op;
        for (const char* t : two) {
          if (starts(s_, p, t)) op = t;
        }
        if (op.empty() && std::strchr("+-/*%~[](){}><=.:|,;", c) != nullptr && c != 0) op = c;
        if (op.empty()) {
          std::size_t len = 0;
          decode_at(s_, p, len);
          syntax_error(p, "unexpected char '" + s_.substr(p, len) + "'");
        }
        if (op == "(" || op == "[" || op == "{") {
          balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
        } else if (op == ")" || op == "]" || op == "}") {
          if (balance.empty()) syntax_error(p, "unexpected '" + op + "'");
          if (balance.back() != op[0]) {
            syntax_error(p, "unexpected '" + op + "', expected '" + balance.back() + "'");
          }
          balance.pop_back();
        }
        out_.push_back(Token{Tok::Op, op, 0, 0.0, p});
        p += op.size();
      }
    }
  }

  // Integers (decimal, 0x, 0o, 0b, '_' separators) and floats, as jinja2's integer_re/float_re.
  std::size_t number(std::size_t p) {
    const std::size_t n = s_.size();
    auto digits = [&](std::size_t q, auto ok) {
      // (\d+_)*\d+ : digit runs joined by single underscores
      std::size_t start = q;
      while (q < n && ok(s_[q])) {
        ++q;
        if (q + 1 < n && s_[q] == '_' && ok(s_[q + 1])) ++q;
      }
      return q == start ? std::string::npos : q;
    };
    auto dec = [](char c) { return c >= '0' && c <= '9'; };
    auto clean = [](std::string t) {
      std::string r;
      for (char c : t) {
        if (c != '_') r += c;
      }
      return r;
    };
    if (s_[p] == '0' && p + 1 < n && std::strchr("xXoObB", s_[p + 1]) != nullptr && s_[p + 1]) {
      char k = static_cast<char>(std::tolower(static_cast<unsigned char>(s_[p + 1])));
      int base = k == 'x' ? 16 : k == 'o' ? 8 : 2;
      auto ok = [base](char c) { return hex_digit(c) >= 0 && hex_digit(c) < base; };
      std::size_t q = p + 2;
      if (q < n && s_[q] == '_') ++q;
      std::size_t e = digits(q, ok);
      if (e == std::string::npos) syntax_error(p, "invalid integer literal");
      std::string t = clean(s_.substr(q, e - q));
      std::uint64_t v = 0;
      for (char c : t) {
        if (v > (static_cast<std::uint64_t>(INT64_MAX) - hex_digit(c)) / base) {
          syntax_error(p, "integer literal does not fit in 64 bits");
        }
        v = v * base + static_cast<std::uint64_t>(hex_digit(c));
      }
      out_.push_back(Token{Tok::Int, s_.substr(p, e - p), static_cast<std::int64_t>(v), 0.0, p});
      return e;
    }
    std::size_t e = digits(p, dec);
    bool is_float = false;
    bool after_dot = p > 0 && s_[p - 1] == '.';
    std::size_t f = e;
    if (!after_dot) {
      if (f < n && s_[f] == '.' && f + 1 < n && dec(s_[f + 1])) {
        f = digits(f + 1, dec);
        is_float = true;
      }
      if (f < n && (s_[f] == 'e' || s_[f] == 'E')) {
        std::size_t g = f + 1;
        if (g < n && (s_[g] == '+' || s_[g] == '-')) ++g;
        std::size_t h = digits(g, dec);
        if (h != std::string::npos) {
          f = h;
          is_float = true;
        }
      }
    }
    if (is_float) {
      std::string t = clean(s_.substr(p, f - p));
      out_.push_back(Token{Tok::Float, t, 0, std::strtod(t.c_str(), nullptr), p});
      return f;
    }
    std::string t = clean(s_.substr(p, e - p));
    if (t.size() > 1 && t[0] == '0' && t.find_first_not_of('0') != std::string::npos) {
      syntax_error(p, "integer literals with leading zeros are not supported");
    }
    std::int64_t v = 0;
    for (char c : t) {
      if (v > (INT64_MAX - (c - '0')) / 10)
        syntax_error(p, "integer literal does not fit in 64 bits");
      v = v * 10 + (c - '0');
    }
    out_.push_back(Token{Tok::Int, t, v, 0.0, p});
    return e;
  }

  const std::string& s_;
  std::size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> lex(const std::string& src) { return Lexer(src).run(); }

std::pair<int, int> line_col(const std::vector<std::size_t>& line_starts, const std::string& src,
                             std::size_t offset) {
  auto it = std::upper_bound(line_starts.begin(), line_starts.end(), offset);
  std::size_t line = static_cast<std::size_t>(it - line_starts.begin());
  std::size_t start = line == 0 ? 0 : line_starts[line - 1];
  int col = 1;
  for (std::size_t i = start; i < offset && i < src.size(); ++i) {
    if ((static_cast<unsigned char>(src[i]) & 0xC0) != 0x80) ++col;
  }
  return {static_cast<int>(line), col};
}

}  // namespace omni::jinja::detail
