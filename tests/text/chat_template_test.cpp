// The Jinja chat-template interpreter: differential test against transformers' own rendering
// (fixture made by scripts/fixtures/make_chat_template_fixture.py) and unit tests for errors,
// Undefined, whitespace control and limits.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "modalities/text/jinja/chat_template.h"
#include "modalities/text/jinja/jinja.h"

namespace {

using ojson = nlohmann::ordered_json;
using omni::InputError;
namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(OMNI_SOURCE_DIR) / "tests" / "fixtures" / "text";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string R(const std::string& tmpl, const ojson& ctx = ojson::object()) {
  return omni::jinja::render(tmpl, ctx);
}

// The message of the InputError that rendering `tmpl` throws ("" when it does not throw).
std::string error_of(const std::string& tmpl, const ojson& ctx = ojson::object(),
                     const omni::jinja::Limits& limits = {}) {
  try {
    omni::jinja::render(tmpl, ctx, limits);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// ---- differential: every conversation of the fixture, rendered as transformers renders it ----
TEST(ChatTemplateFixture, MatchesTransformersOnEveryConversation) {
  ojson fx = ojson::parse(read_file(kFixtures / "chat_template_cases.json"));
  int checked = 0;
  for (const auto& [name, tmpl_case] : fx["templates"].items()) {
    std::string file = tmpl_case["file"].get<std::string>();
    std::string tmpl = read_file(kFixtures / "chat_templates" / file);
    ASSERT_FALSE(tmpl.empty()) << file;
    omni::jinja::Template t(tmpl, {}, file);
    int per_template = 0;
    for (const auto& c : tmpl_case["cases"]) {
      omni::jinja::ChatTemplateOptions opt;
      opt.add_generation_prompt = c.value("add_generation_prompt", false);
      opt.tools = c.contains("tools") ? c["tools"] : ojson(nullptr);
      opt.special_tokens = fx["special_tokens"];
      opt.extra = c.contains("kwargs") ? c["kwargs"] : ojson::object();
      ojson ctx = omni::jinja::chat_template_context(c["messages"], opt);
      if (c.contains("error")) {
        EXPECT_THROW(t.render(ctx), InputError) << name << " case " << per_template;
      } else {
        std::string got;
        ASSERT_NO_THROW(got = t.render(ctx)) << name << " case " << per_template;
        EXPECT_EQ(got, c["expected"].get<std::string>()) << name << " case " << per_template;
      }
      ++per_template;
      ++checked;
    }
    EXPECT_GE(per_template, 50) << name;
  }
  EXPECT_GE(checked, 300);
}

// ---- differential: template snippets for the interpreter's corners, rendered by transformers'
// jinja2 environment --------------------------------------------------------------------------
TEST(ChatTemplateFixture, SnippetsMatchTransformersJinjaEnvironment) {
  ojson fx = ojson::parse(read_file(kFixtures / "chat_template_cases.json"));
  const ojson& ctx = fx["snippet_context"];
  ASSERT_GE(fx["snippets"].size(), 90u);
  for (const auto& c : fx["snippets"]) {
    std::string tmpl = c["template"].get<std::string>();
    if (c.contains("error")) {
      EXPECT_THROW(omni::jinja::render(tmpl, ctx), InputError)
          << tmpl << "\n(jinja2: " << c["error"].get<std::string>() << ")";
    } else {
      std::string got;
      ASSERT_NO_THROW(got = omni::jinja::render(tmpl, ctx)) << tmpl;
      EXPECT_EQ(got, c["expected"].get<std::string>()) << tmpl;
    }
  }
}

// ---- unit tests -------------------------------------------------------------------------------
TEST(Jinja, WhitespaceControlAsTransformersConfiguresIt) {
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it goes.
  EXPECT_EQ(R("{% if true %}\n  a\n  {% endif %}\nb"), "  a\nb");
  EXPECT_EQ(R("x  {%- if true -%}  y  {%- endif %}"), "xy");
  EXPECT_EQ(R("a\n{{ 1 }}\nb"), "a\n1\nb");  // no trimming after }}
  EXPECT_EQ(R("a\n    {{- 1 -}}\n  b"), "a1b");
  EXPECT_EQ(R("{# comment #}\nx"), "x");
  EXPECT_EQ(R("{%+ if true %}y{% endif %}"), "y");
  EXPECT_EQ(R("  {%+ if true %}y{% endif %}"), "  y");
  EXPECT_EQ(R("line\n"), "line");  // one trailing newline is dropped
  EXPECT_EQ(R("line\n\n"), "line\n");
  EXPECT_EQ(R("a\r\nb"), "a\nb");
  EXPECT_EQ(R("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
}

TEST(Jinja, ExpressionsFollowPython) {
  EXPECT_EQ(R("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 1 / 2 }} {{ 4 / 2 }} {{ 2 ** 10 }}"),
            "3 -4 2 0.5 2.0 1024");
  EXPECT_EQ(R("{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-5 }} {{ 1.5e16 }} {{ 123.0 }}"),
            "0.30000000000000004 1e+20 1e-05 1.5e+16 123.0");
  EXPECT_EQ(R("{{ [1, 2.5, 'a', none, true, {'k': \"it's\"}] }}"),
            "[1, 2.5, 'a', None, True, {'k': \"it's\"}]");
  EXPECT_EQ(R("{{ (1,) }} {{ 'ab' ~ 1 ~ none }} {{ 'a' * 3 }}"), "(1,) ab1None aaa");
  EXPECT_EQ(R("{{ 'abc'[::-1] }} {{ [1,2,3][-1] }} {{ [1,2,3][1:] }} {{ 'héllo'[1] }}"),
            "cba 3 [2, 3] é");
  EXPECT_EQ(R("{{ 1 < 2 < 3 }} {{ 'a' in 'cat' }} {{ 2 not in [1] }} {{ 1 == 1.0 }}"),
            "True True True True");
  EXPECT_EQ(R("{{ 'x' if false }}|{{ 'y' if false else 'z' }}|{{ none or 'd' }}"), "|z|d");
}

TEST(Jinja, StringAndDictMethods) {
  EXPECT_EQ(R("{{ ' a b  c '.split() }} {{ 'a,b'.split(',') }} {{ 'a b c'.split(None, 1) }}"),
            "['a', 'b', 'c'] ['a', 'b'] ['a', 'b c']");
  EXPECT_EQ(R("{{ '\\n x \\n'.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '  a'.lstrip() }}"),
            "x|hi|a");
  EXPECT_EQ(R("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }}"), "True True");
  EXPECT_EQ(R("{{ 'hello world'.title() }} {{ 'ABC'.lower() }} {{ 'a-b'.replace('-', '+') }}"),
            "Hello World abc a+b");
  ojson ctx = {{"d", {{"a", 1}, {"b", 2}}}};
  EXPECT_EQ(R("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", ctx), "a=1;b=2;");
  EXPECT_EQ(R("{{ d.get('a') }} {{ d.get('z', 9) }} {{ d.get('z') }} {{ d['b'] }}", ctx),
            "1 9 None 2");
}

TEST(Jinja, FiltersAndTests) {
  ojson ctx = {{"tools", ojson::array({{{"name", "f"}, {"x", 1.5}, {"u", "é\n"}}})}};
  EXPECT_EQ(R("{{ tools[0] | tojson }}", ctx), "{\"name\": \"f\", \"x\": 1.5, \"u\": \"é\\n\"}");
  EXPECT_EQ(R("{{ tools[0] | tojson(indent=2) }}", ctx),
            "{\n  \"name\": \"f\",\n  \"x\": 1.5,\n  \"u\": \"é\\n\"\n}");
  EXPECT_EQ(R("{{ [3,1,2] | sort | join(',') }} {{ 'ab' | length }} {{ ' x ' | trim }}"),
            "1,2,3 2 x");
  EXPECT_EQ(R("{{ x | default('d') }} {{ '' | default('e', true) }} {{ 5 | string }}"), "d e 5");
  EXPECT_EQ(R("{{ [1, 'a', none] | select('string') | list }} {{ [{'a': 1}] | map(attribute='a') | "
              "list }}"),
            "['a'] [1]");
  EXPECT_EQ(R("{{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ none is none }} "
              "{{ x is defined }} {{ 3 is odd }} {{ 4 is divisibleby 2 }}"),
            "True True True True False True True");
}

TEST(Jinja, LoopsNamespacesAndScoping) {
  EXPECT_EQ(R("{% for x in 'ab' %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}"
              "{{ loop.previtem }};{% endfor %}"),
            "1TrueFalse2;2FalseTrue2a;");
  // a set inside a loop does not leak; a namespace does
  EXPECT_EQ(R("{% set x = 0 %}{% for i in [1, 2] %}{% set x = i %}{% endfor %}{{ x }}"), "0");
  EXPECT_EQ(R("{% set ns = namespace(a=0) %}{% for i in [1, 2] %}{% set ns.a = ns.a + i %}"
              "{% endfor %}{{ ns.a }}"),
            "3");
  EXPECT_EQ(
      R("{% for i in range(5) if i is odd %}{{ i }}{{ loop.length }}{% else %}none{% endfor %}"),
      "1232");
  EXPECT_EQ(R("{% for i in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for i in range(9) %}{% if i == 2 %}{% continue %}{% endif %}"
              "{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
            "013");
  EXPECT_EQ(R("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(R("{% set s %}in{{ 1 }}{% endset %}{{ s }}|{% set t | upper %}x{% endset %}{{ t }}"),
            "in1|X");
  EXPECT_EQ(R("{% macro m(a, b='d') %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }} {{ m(2, b=3) }}"),
            "1-d 2-3");
  EXPECT_EQ(R("{% generation %}gen{% endgeneration %}"), "gen");
}

TEST(Jinja, UndefinedBehavesAsJinja2Default) {
  EXPECT_EQ(R("[{{ missing }}]"), "[]");
  EXPECT_EQ(R("{{ missing is defined }} {{ missing | length }} {{ missing ~ 'a' }}"), "False 0 a");
  EXPECT_EQ(R("{% for x in missing %}x{% endfor %}{% if missing %}y{% endif %}ok"), "ok");
  EXPECT_EQ(R("{{ d.nokey }}|{{ d['nokey'] is defined }}", {{"d", ojson::object()}}), "|False");
  EXPECT_EQ(R("{{ [1][5] }}|{{ 'abc'.nosuch }}"), "|");
  // attribute access, arithmetic and calls on Undefined raise, naming line:column
  EXPECT_NE(error_of("{{ missing.attr }}").find("line 1:"), std::string::npos);
  EXPECT_NE(error_of("\n  {{ missing + 1 }}").find("line 2:"), std::string::npos);
  EXPECT_NE(error_of("{{ missing() }}").find("'missing' is undefined"), std::string::npos);
}

TEST(Jinja, ErrorsNameLineAndColumn) {
  std::string e = error_of("ok\n{% include 'x' %}");
  EXPECT_NE(e.find("line 2:"), std::string::npos) << e;
  EXPECT_NE(e.find("'include'"), std::string::npos) << e;
  e = error_of("{{ x | nosuchfilter }}");
  EXPECT_NE(e.find("line 1:"), std::string::npos) << e;
  EXPECT_NE(e.find("nosuchfilter"), std::string::npos) << e;
  e = error_of("{% if x is nosuchtest %}{% endif %}");
  EXPECT_NE(e.find("nosuchtest"), std::string::npos) << e;
  e = error_of("{% for x in y %}");
  EXPECT_NE(e.find("endfor"), std::string::npos) << e;
  e = error_of("{{ 'a' + 1 }}");
  EXPECT_NE(e.find("line 1:8: can only concatenate str"), std::string::npos) << e;
  e = error_of("{% set l = [] %}{{ l.append(1) }}");
  EXPECT_NE(e.find("unsafe"), std::string::npos) << e;
  e = error_of("{% extends 'base' %}");
  EXPECT_NE(e.find("not supported"), std::string::npos) << e;
  e = error_of("{{ 'a' % 1 }}");
  EXPECT_NE(e.find("not supported"), std::string::npos) << e;
  e = error_of("{% break %}");
  EXPECT_NE(e.find("outside of a for loop"), std::string::npos) << e;
  e = error_of("{{ unclosed");
  EXPECT_NE(e.find("line 1:"), std::string::npos) << e;
  for (const char* t :
       {"{% set true = 1 %}", "{% set None = 1 %}", "{% for 1 in [2] %}{% endfor %}"}) {
    e = error_of(t);
    EXPECT_NE(e.find("can't assign to a constant"), std::string::npos) << t << ": " << e;
  }
  e = error_of("{% set (a, 1) = [1, 2] %}");
  EXPECT_NE(e.find("line 1:8: can't assign to this expression"), std::string::npos) << e;
}

TEST(Jinja, RaiseExceptionCarriesTheTemplatesMessage) {
  std::string e = error_of("a\n{{ raise_exception('Conversation roles must alternate!') }}");
  EXPECT_NE(e.find("Conversation roles must alternate!"), std::string::npos) << e;
  EXPECT_NE(e.find("line 2:"), std::string::npos) << e;
}

TEST(Jinja, LimitsAreClearErrors) {
  omni::jinja::Limits lim;
  lim.max_loop_iterations = 1000;
  EXPECT_NE(error_of("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}",
                     ojson::object(), lim)
                .find("loop iterations"),
            std::string::npos);
  lim = {};
  lim.max_output_bytes = 1000;
  EXPECT_NE(error_of("{% for i in range(100) %}0123456789abcdef{% endfor %}", ojson::object(), lim)
                .find("limit"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 100000 }}", ojson::object(), lim).find("limit"), std::string::npos);
  lim = {};
  lim.max_depth = 20;
  EXPECT_NE(error_of("{{" + std::string(50, '(') + "1" + std::string(50, ')') + "}}",
                     ojson::object(), lim)
                .find("deeper than the limit"),
            std::string::npos);
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", ojson::object(), lim)
                .find("limit"),
            std::string::npos);
  // with the default limits, templates that recurse forever (directly, mutually, through a
  // filter, with growing arguments) end with an InputError, not a stack overflow or unbounded
  // memory
  for (const char* forever :
       {"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}",
        "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x') }}",
        "{% macro f(l) %}{{ [l, l] | map('string') | list | length }}{{ f([l, l]) }}{% endmacro %}"
        "{{ f([1]) }}"}) {
    const std::string m = error_of(forever);
    EXPECT_NE(m.find("limit"), std::string::npos) << forever << " -> " << m;
  }
  // long left-nested chains count as nesting too (their trees are as deep as they are long)
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  EXPECT_NE(error_of(chain + " }}").find("deeper than the limit"), std::string::npos);
  std::string attrs = "{{ x";
  for (int i = 0; i < 5000; ++i) attrs += ".a";
  EXPECT_NE(error_of(attrs + " }}").find("deeper than the limit"), std::string::npos);
  // a namespace that holds itself cannot be printed (Python would print {...})
  EXPECT_NE(
      error_of("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}").find("holding itself"),
      std::string::npos);
  EXPECT_NE(error_of("{{ [1, 2] * 9223372036854775807 }}").find("limit"), std::string::npos);
  // an empty string or list repeated any number of times is empty, at once (this ran for ever)
  EXPECT_EQ(R("[{{ '' * 9223372036854775807 }}]{{ ([] * 9223372036854775807) | length }}"), "[]0");
  EXPECT_EQ(R("{{ (z | trim * 9223372036854775807 * 10) | length }}"), "0");
  EXPECT_NE(error_of("{{ 'a\\nb' | indent(9223372036854775807) }}").find("limit"),
            std::string::npos);
  EXPECT_EQ(R("{{ 'a\\nb' | indent(1500) }}"), "a\n" + std::string(1500, ' ') + "b");
  lim = {};
  lim.max_template_bytes = 10;
  EXPECT_NE(error_of("{{ 'this is long' }}", ojson::object(), lim).find("limit"),
            std::string::npos);
  EXPECT_NE(error_of("{{ range(1000000) | length }}").find("Range too big"), std::string::npos);
}

TEST(Jinja, MarkupFromSafeIsRefusedWhereItWouldEscape) {
  // jinja2: ("'"|safe) + "<b>" is Markup("'&lt;b&gt;"): Markup escapes what is added to it
  EXPECT_NE(error_of("{{ 'a'|safe * 2 }}").find("Markup"), std::string::npos);
  EXPECT_NE(error_of("{{ ('a'|safe).upper() }}").find("Markup"), std::string::npos);
  EXPECT_EQ(R("{{ '<b>'|safe }}{{ '<b>'|safe ~ '<i>' }}{{ '<b>'|safe|length }}"), "<b><b><i>3");
}

TEST(Jinja, InvalidUtf8NeverCrashes) {
  // bytes that are not UTF-8 in the template and in the context render or fail cleanly
  std::string bad = "a\xff\xfe{{ s }}\xc3{{ s | length }}{{ s[1] }}{{ s | tojson }}{{ s.upper() }}";
  try {
    std::string out = omni::jinja::render(bad, {{"s", "x\xffy"}});
    EXPECT_EQ(out.substr(0, 3), "a\xff\xfe");
  } catch (const InputError&) {
  } catch (const nlohmann::json::exception&) {
  }
  SUCCEED();
}

TEST(Jinja, ReprItCannotReproduceIsAnError) {
  EXPECT_NE(error_of("{{ [1] | map('string') }}").find("repr"), std::string::npos);
  EXPECT_NE(error_of("{{ 1e300 | int }}").find("64 bits"), std::string::npos);
  EXPECT_NE(error_of("{{ ['\\u0301'] }}").find("repr"), std::string::npos);
  EXPECT_EQ(R("{{ ['한국어', '🙂'] }}"), "['한국어', '🙂']");
}

// ---- context and directory helpers ------------------------------------------------------------
TEST(ChatTemplate, ContextDropsNullsAndAliasesReasoning) {
  ojson msgs = ojson::parse(R"([{"role": "assistant", "content": "c", "tool_calls": null,
                                 "reasoning": "r"}])");
  ojson ctx = omni::jinja::chat_template_context(msgs, {});
  const ojson& m = ctx["messages"][0];
  EXPECT_FALSE(m.contains("tool_calls"));
  EXPECT_EQ(m.begin().key(), "thinking");
  EXPECT_EQ(m["reasoning_content"], "r");
  EXPECT_TRUE(ctx["tools"].is_null());
  // a processor turns OpenAI image_url blocks into HF image blocks; a tokenizer does not
  ojson vis = ojson::parse(R"([{"role": "user", "content": [{"type": "image_url",
                               "image_url": {"url": "http://x/a.png"}}, {"type": "text", "text": "t"}]}])");
  omni::jinja::ChatTemplateOptions popt;
  popt.processor = true;
  EXPECT_EQ(omni::jinja::chat_template_context(vis, popt)["messages"][0]["content"][0],
            ojson::parse(R"({"type": "image", "url": "http://x/a.png"})"));
  EXPECT_EQ(omni::jinja::chat_template_context(vis, {})["messages"][0]["content"][0]["type"],
            "image_url");
  EXPECT_THROW(omni::jinja::chat_template_context(ojson::array(), {}), InputError);
  EXPECT_THROW(omni::jinja::chat_template_context(ojson::array({1}), {}), InputError);
}

TEST(ChatTemplate, FindsTheTemplateInACheckpointDirectory) {
  fs::path dir = fs::temp_directory_path() / ("omni_chat_tmpl_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto write = [&](const char* name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
  };
  EXPECT_THROW(omni::jinja::find_chat_template(dir), InputError);
  write("tokenizer_config.json", R"({"chat_template": "from-config", "eos_token": "<e>",
                                     "pad_token": {"content": "<p>"}, "bos_token": null})");
  EXPECT_EQ(omni::jinja::find_chat_template(dir).text, "from-config");
  write("chat_template.jinja", "from-jinja");
  EXPECT_EQ(omni::jinja::find_chat_template(dir).text, "from-jinja");
  write("chat_template.json", R"({"chat_template": "from-json"})");
  EXPECT_EQ(omni::jinja::find_chat_template(dir).text, "from-json");
  EXPECT_EQ(omni::jinja::find_chat_template(dir, omni::jinja::TemplateOwner::kTokenizer).text,
            "from-jinja");
  write("chat_template.json", "{not json");
  EXPECT_THROW(omni::jinja::find_chat_template(dir), InputError);
  ojson cfg = ojson::parse(read_file(dir / "tokenizer_config.json"));
  ojson sp = omni::jinja::special_tokens_from_config(cfg);
  EXPECT_EQ(sp, ojson::parse(R"({"eos_token": "<e>", "pad_token": "<p>"})"));
  fs::remove_all(dir);
}

}  // namespace
