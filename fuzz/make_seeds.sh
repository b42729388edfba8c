#!/usr/bin/env bash
# Seeds for the fuzz corpora, from the test fixtures (plus a few tiny media files made with the
# ffmpeg CLI). scripts/fuzz --seed-corpus merges them into fuzz/corpus/<target>/ (-merge=1 keeps
# only inputs that add coverage). Usage: fuzz/make_seeds.sh OUT_DIR
set -euo pipefail
out=${1:?usage: fuzz/make_seeds.sh OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
for t in graph_yaml manifest chat_template tokenizer safetensors checkpoint preprocessor media wav image; do
  mkdir -p "$out/fuzz_$t"
done

# YAML graphs.
for f in examples/graphs/*.yaml tests/core/data/*.yaml tests/consumer/scale.yaml; do
  cp "$f" "$out/fuzz_graph_yaml/$(basename "$f")"
done
# A tour of the graph checks that a random edit rarely reaches (none had made a cycle, a port type
# mismatch or a capacity below 1 after 3 fuzzing hours): one small graph each.
python3 - "$out/fuzz_graph_yaml" <<'PY'
import pathlib, sys
out = pathlib.Path(sys.argv[1])
two = "graph:\n  nodes:\n    - {name: a, type: PassThrough}\n    - {name: b, type: PassThrough}\n"
tour = {
    "cycle": two + "  edges:\n    - {from: a.out, to: b.in}\n    - {from: b.out, to: a.in}\n",
    "self_loop": two + "  edges:\n    - {from: a.out, to: a.in}\n",
    "capacity_0": two + "  edges:\n    - {from: a.out, to: b.in, capacity: 0, overflow: drop_oldest}\n",
    "capacity_huge": two + "  edges:\n    - {from: a.out, to: b.in, capacity: 99999999999999999999}\n",
    "overflow_bad": two + "  edges:\n    - {from: a.out, to: b.in, overflow: [block]}\n",
    "port_types": "graph:\n  nodes:\n    - {name: m, type: ManifestSource, params: {path: x}}\n"
                  "    - {name: c, type: CountingSource}\n    - {name: z, type: Zip, params: {require_all: true}}\n"
                  "    - {name: w, type: RecordWriter, params: {path: '-'}}\n"
                  "  edges:\n    - {from: c.out, to: w.in}\n    - {from: m.out, to: z.in0}\n"
                  "    - {from: c.out, to: z.in1}\n  outputs: [z.out]\n",
    "params": "graph:\n  nodes:\n    - {name: c, type: CountingSource, params: {count: '12', start: -3, step: 2.5,"
              " interval_us: [1, 2], burst: {a: 1}, skip_every: ~}}\n"
              "    - {name: p, type: PassThrough, params: {sleep_us: abc, nope: 1}}\n"
              "    - {name: z, type: Zip, params: {require_all: yes}}\n",
    "names": "graph:\n  name: [n]\n  nodes:\n    - {name: a.b, type: PassThrough}\n    - {name: a, type: PassThrough}\n"
             "    - {name: a, type: PassThrough}\n    - {type: PassThrough}\n    - {name: s, type: sub.yaml}\n"
             "  inputs: [a.in, q.in]\n  outputs: [a.out, a.nope]\n",
}
for name, text in tour.items():
    (out / f"tour_{name}.yaml").write_text(text)
PY

# Manifests.
cp tests/dist/data/manifest.jsonl "$out/fuzz_manifest/"
printf '{"file": "a.mp4", "question": "what?"}\r\n\n  \n{"file": 3}\nnot json\n[1, 2]\n{"x": "\\u00e9"}' \
  >"$out/fuzz_manifest/mixed.jsonl"

# Chat templates: each template with one of its conversations (TEMPLATE \0 JSON).
python3 - "$out/fuzz_chat_template" <<'PY'
import json, pathlib, re, sys
out = pathlib.Path(sys.argv[1])
d = json.load(open("tests/fixtures/text/chat_template_cases.json"))
tdir = pathlib.Path("tests/fixtures/text/chat_templates")
for key, t in d["templates"].items():
    tmpl = (tdir / t["file"]).read_bytes()
    for i, c in enumerate(t["cases"][:2]):
        conv = {"messages": c["messages"], "add_generation_prompt": c.get("add_generation_prompt", False)}
        for k in ("tools", "documents"):
            if c.get(k) is not None: conv[k] = c[k]
        (out / f"{key}_{i}").write_bytes(tmpl + b"\0" + json.dumps(conv, ensure_ascii=False).encode())
snippets = [
    "{% for m in messages %}{{ loop.index }}:{{ m.role|upper }}{% if not loop.last %},{% endif %}{% endfor %}",
    "{%- set ns = namespace(n=0) -%}{% for x in range(5) %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}",
    "{% macro f(a, b=2) %}{{ a ~ b }}{% endmacro %}{{ f(1) }}{{ f(b=3, a='x') }}",
    "{{ messages | tojson(indent=2) }}{{ 'a b c'.split() | join('-') }}{{ [3,1,2]|sort|list }}",
    "{% raw %}{{ x }}{% endraw %}{# c #}{{ 7 // 2 }}{{ -7 % 3 }}{{ 2 ** 10 }}{{ 'x' * 3 }}",
    "{% for a, b in {'k': 1}.items() if b %}{{ a }}{% else %}none{% endfor %}{{ raise_exception('no') if false }}",
]
for i, s in enumerate(snippets):
    (out / f"snippet_{i}").write_bytes(s.encode() + b"\0" + b'[{"role": "user", "content": "hi"}]')
# A tour of the language: every statement, method, filter, test and global at least once, with
# the argument forms that take their own paths. Mutation alone had not reached about a tenth of
# the interpreter after 6 hours (whole methods such as splitlines and dict.get, {% set %} blocks,
# break/continue), because a random insertion rarely makes a valid call; from these it varies
# the calls instead. Errors are fine: the seeds are inputs, not expected outputs.
tour = [
    "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}{% if m.role == 'system' %}"
    "{% continue %}{% endif %}{{ loop.cycle('a', 'b') }}{{ loop.previtem is defined }}"
    "{{ loop.nextitem is undefined }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}"
    "{{ loop.first }}{{ loop.depth }}{{ loop.depth0 }}{% endfor %}",
    "{% set x %}{{ messages[0].role }}{% endset %}{{ x }}{% set y | upper | trim %} a {% endset %}{{ y }}",
    "{% set a, b = [1, 2] %}{% set ns = namespace(a=1, l=[]) %}{% set ns.a = ns.a + b %}{{ ns.a }}"
    "{% set ns2 = namespace({'k': 1}, z=2) %}{{ ns2.k }}{% set ns._x = 1 %}",
    "{% macro f(a, b=2) %}[{{ a }}{{ b }}{{ varargs }}{{ kwargs }}]{% endmacro %}{{ f(1) }}{{ f(1, 2, 3) }}",
    "{% if n < 0 %}neg{% elif n %}pos{% else %}zero{% endif %}{% if x > 9 %}{% elif not x %}{% endif %}",
    "{% for k, v in d.items() if v %}{{ k }}={{ v }}{% else %}none{% endfor %}"
    "{% for x in [] %}{% else %}empty{% endfor %}{% for a in [[1, 2], [3]] %}{% for b in a %}"
    "{{ loop.depth }}{{ b }}{% endfor %}{% endfor %}",
    "{{ range(5) | list }}{{ range(1, 10, 3) | list }}{{ range(10, 0, -2) | list }}"
    "{{ range(0, 10, 0) }}{{ range(2 ** 40) | length }}{{ range('a') }}",
    "{{ dict(a=1) }}{{ dict({'a': 1}, b=2) }}{{ dict([('a', 1), ['b', 2]]) }}{{ dict([(1, 2, 3)]) }}"
    "{{ strftime_now('%Y-%m-%d') }}{{ strftime_now() }}{{ raise_exception('stop') if n > 99 }}",
    "{% set t = 'a,b,,c d' %}{{ t.split(',') }}{{ t.split(',', 1) }}{{ t.rsplit(',', 1) }}"
    "{{ t.split(none, 1) }}{{ t.rsplit(none, 1) }}{{ t.split('') }}{{ s.splitlines() }}"
    "{{ s.splitlines(true) }}{{ s.splitlines(keepends=false) }}",
    "{% set t = 'a,b,,c' %}{{ t.replace(',', ';') }}{{ t.replace(',', ';', 2) }}{{ t.replace('', '-', 3) }}"
    "{{ t.replace('', '-') }}{{ t.count(',') }}{{ t.count('') }}{{ t.find('b') }}{{ t.rfind(',') }}"
    "{{ t.index('b') }}{{ t.rindex(',') }}{{ t.index('z') }}{{ t.find('é') }}",
    "{{ 'abc'.removeprefix('a') }}{{ 'abc'.removesuffix('c') }}{{ 'abc'.removeprefix() }}"
    "{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith(('c',)) }}{{ 'abc'.startswith('b', 1) }}"
    "{{ 'abc'.endswith('b', 0, 2) }}{{ 'abc'.startswith(1) }}",
    "{{ ' \t'.isspace() }}{{ '12'.isdigit() }}{{ 'ab'.isalpha() }}{{ 'a1'.isalnum() }}{{ 'AB'.isupper() }}"
    "{{ 'ab'.islower() }}{{ 'é'.isdigit() }}{{ ''.isspace() }}{{ '1a'.isupper() }}",
    "{{ 'ab cd'.title() }}{{ 'aB'.capitalize() }}{{ ', '.join(['a', 'b']) }}{{ ','.join([1]) }}"
    "{{ 'a'.upper() }}{{ 'A'.lower() }}{{ ' a '.strip() }}{{ 'xax'.strip('x') }}{{ 'xa'.lstrip('x') }}"
    "{{ 'ax'.rstrip('x') }}{{ 'a'.zfill(3) }}{{ 'a'.center(5) }}",
    "{{ d.get('b') }}{{ d.get('zz', 5) }}{{ d.get() }}{{ d.items() | list }}{{ d.keys() | list }}"
    "{{ d.values() | list }}{{ d.copy() }}{{ d.update(a=1) }}{{ d.pop('a') }}{{ d.zz }}{{ d['zz'] }}",
    "{{ l.index(2) }}{{ l.count(3) }}{{ l.index(99) }}{{ l.append(1) }}{{ l.count() }}{{ l[1:] }}"
    "{{ l[::-1] }}{{ l[-1] }}{{ (1, 2).index(2) }}{{ l.copy() }}",
    "{{ messages | selectattr('role', 'eq', 'user') | list }}{{ messages | rejectattr('role') | list }}"
    "{{ l | select('odd') | list }}{{ l | reject('none') | list }}{{ messages | map(attribute='role') | list }}"
    "{{ messages | map(attribute='zz', default='x') | list }}{{ l | map('string') | join }}"
    "{{ messages | map('upper') | list }}",
    "{{ l | sort }}{{ l | sort(reverse=true) }}{{ messages | sort(attribute='role') }}{{ l | unique | list }}"
    "{{ messages | unique(attribute='role') | list }}{{ l | min }}{{ l | max }}"
    "{{ messages | min(attribute='role') }}{{ l | sum }}{{ l | sum(start=10) }}"
    "{{ messages | sum(attribute='n') }}{{ l | reverse | list }}{{ 'abc' | reverse }}",
    "{{ d | dictsort }}{{ d | dictsort(reverse=true) }}{{ d | items | list }}{{ d | tojson }}"
    "{{ d | tojson(indent=2) }}{{ d | tojson(separators=(',', ':')) }}{{ d | tojson(sort_keys=true) }}"
    "{{ d | length }}{{ d | count }}{{ d | list }}{{ d | first }}{{ d | string }}{{ d | attr('b') }}",
    "{{ s | indent }}{{ s | indent(2, true) }}{{ s | indent(width='> ', first=true, blank=true) }}"
    "{{ s | trim }}{{ 'xax' | trim('x') }}{{ w | title }}{{ w | capitalize }}{{ w | lower }}{{ w | upper }}"
    "{{ s | replace('a', 'b', 1) }}{{ s | first }}{{ s | last }}{{ s | list }}{{ s | safe }}",
    "{{ '42' | int }}{{ '0x1A' | int(0, 16) }}{{ '101' | int(base=2) }}{{ 'z' | int(7) }}{{ x | int }}"
    "{{ 1e300 | int }}{{ '2.5' | float }}{{ 'nan' | float }}{{ n | abs }}{{ x | round }}"
    "{{ x | round(1, 'floor') }}{{ x | round(1, 'ceil') }}{{ 2.675 | round(2) }}{{ n | string }}",
    "{{ z | default('D') }}{{ '' | default('E', true) }}{{ zz | d('u') }}{{ l | join(', ') }}"
    "{{ messages | join(', ', attribute='role') }}{{ l | last }}{{ l | first }}{{ l | length }}"
    "{{ [] | first }}{{ [] | last }}{{ l | list | count }}{{ -n }}",
    "{{ n is number }}{{ x is float }}{{ n is integer }}{{ t is boolean }}{{ t is true }}{{ f is false }}"
    "{{ z is none }}{{ zz is defined }}{{ zz is undefined }}{{ s is string }}{{ d is mapping }}"
    "{{ l is iterable }}{{ l is sequence }}{{ d.get is callable }}{{ w is lower }}{{ w is upper }}",
    "{{ n is odd }}{{ n is even }}{{ n is divisibleby 3 }}{{ n is eq -3 }}{{ n is equalto 1 }}"
    "{{ n is ne 1 }}{{ n is lt 1 }}{{ n is lessthan 1 }}{{ n is le 1 }}{{ n is gt 1 }}"
    "{{ n is greaterthan 1 }}{{ n is ge 1 }}{{ 1 is in l }}{{ z is sameas none }}",
    "{{ 7 // 2 }}{{ -7 // 2 }}{{ 7 % -3 }}{{ 2 ** -1 }}{{ 1 / 0 }}{{ 'a' ~ 1 ~ none }}{{ [1] + [2] }}"
    "{{ (1, 2) == [1, 2] }}{{ (1, 2) < (1, 3) }}{{ d == {'b': 1} }}{{ 'a' in d }}{{ 1 not in l }}"
    "{{ l * 2 }}{{ -x }}{{ not t }}{{ t and f or n }}{{ x if t else n }}{{ {1: 2, (1,): 3} }}",
    # What 6.5 fuzzing hours (the last half hour from the tour above) had still not reached
    # (scripts/fuzz --coverage after the fifth campaign): slices past the ends, Markup arithmetic,
    # str * int, complex powers, dotted attribute paths, tojson of keys and non-finite numbers,
    # equal containers, `in` over a generator, the generation tag, names read before their
    # assignment in a scope, the parser's nesting limits and end-of-template errors.
    "{{ 5[1:] }}{{ l[-10:] }}{{ l[-10::-1] }}{{ l[:10] }}{{ l[10::-1] }}{{ s[-2:] }}{{ d.items()[0] }}"
    "{{ d.keys()[1:] }}",
    "{{ ('<a>'|safe) + '<b>' }}{{ '&\"\\'>' + ('x'|safe) }}{{ ('a'|safe) - 1 }}{{ ('a'|safe) ~ '<' }}"
    "{{ ('a'|safe)|safe }}{{ ('a'|safe)|string }}{{ ('a'|safe)|upper }}{{ ('a'|safe)|length }}",
    "{{ 3 * 'ab' }}{{ 2 * [1] }}{{ true * 'x' }}{{ (-8) ** 0.5 }}{{ 0.0 ** -1 }}{{ 2 ** 0.5 }}"
    "{{ 'abc'.startswith(('x', 'y')) }}{{ 'abc'.endswith(()) }}",
    "{{ messages | map(attribute='content.0.type') | list }}{{ messages | map(attribute='zz.0') | list }}"
    "{{ '1_000' | int }}{{ '_1' | int }}{{ d | tojson(indent='\\t') }}{{ d | tojson(indent=[]) }}",
    "{{ 1 is sameas none }}{{ 1 is sameas 1 }}{{ zz is sameas 1 }}",
    "{{ " + "(" * 300 + "1" + ")" * 300 + " }}",
    "{{ d" + ".a" * 300 + " }}", "{{ 1" + " + 1" * 300 + " }}", "{{ s" + " | trim" * 300 + " }}",
    "{{ x {{ y }}", "{% set y = 5 %}{% for x in l %}{{ y }}{% set y = x %}{% endfor %}",
    "{% set true = 1 %}", "{% set (a, 1) = [1, 2] %}", "{% for 1 in l %}{% endfor %}", "{% if true %}",
    "{{ 1 +", "{% for %}", "{{ {% }}", "{% endif %}", "{% set x %}",
    "{% for m in messages %}{% generation %}{{ m.role }}{% set q = 1 %}{{ q }}{% endgeneration %}"
    "{{ q }}{% endfor %}",
    "{% macro m() %}[{{ a }}]{% set a = 2 %}{% endmacro %}{% set a = 1 %}{{ m() }}",
    "{% for x in l %}{{ y }}{% set y = x %}{{ y }}{% endfor %}",
    "{{ {1: 'a', 1: 'b'} }}{{ {1: 2, true: 3} }}{{ {none: 1} }}{{ {1.0: 1, 1: 2} }}{{ {[1]: 2} }}"
    "{{ {2: 'a', true: 'b', none: 'c', 1.5: 'd'} | tojson }}{{ {(1,): 2} | tojson }}",
    "{{ d.items() == d.items() }}{{ [1, 2] == [1, 3] }}{{ [1, 2] == [1, 2] }}{{ {'a': 1} == {'a': 1} }}"
    "{{ {'a': 1} == {'b': 1} }}{{ range == range }}{{ range == dict }}{{ namespace() == namespace() }}",
    "{{ 2 in l | map('int') }}{{ 9 in l | select }}{{ 'a' in d.keys() }}{{ 1 in d.values() }}",
    "{{ '\U0001f642' | tojson(ensure_ascii=true) }}{{ s | tojson(ensure_ascii=true) }}"
    "{{ ['nan' | float, 'inf' | float, '-inf' | float] | tojson }}{{ none | tojson }}",
    "{% for m in messages %}{% set loop.x = 1 %}{% endfor %}",
    "{% set ns = namespace(a=1) %}{% set ns.a = 2 %}{% set ns.b = 3 %}{{ ns.a }}{{ ns.b }}{{ ns }}",
]
def calls(t):
    """One seed per {{ call }} of a template made only of them (after an optional {% set %})."""
    m = re.match(r"(\{% set [^%]*%\})(.*)$", t, re.S)
    pre, rest = (m.group(1), m.group(2)) if m else ("", t)
    found = [pre + e for e in re.findall(r"\{\{.*?\}\}", rest)]
    return [t] if "{%" in rest or not found else found
conv = json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                                {"role": "assistant", "content": "yo", "n": -2}],
                   "n": -3, "x": 2.5, "s": "Hé a\nb\r\nc\u2028d", "w": "ab Cd\n ef\r\ngh",
                   "t": True, "f": False,
                   "z": None, "l": [3, -1, 2], "d": {"b": 1, "a": [1, 2], "k": "v"}},
                  ensure_ascii=False).encode()
for i, t in enumerate(tour):
    for j, s in enumerate(calls(t)):
        (out / f"tour_{i}_{j}").write_bytes(s.encode() + b"\0" + conv)
# Context integers beyond 64 bits, and at the edge.
(out / "tour_ctx_big").write_bytes(b"{{ big }}\0" + json.dumps(
    {"messages": [{"role": "user", "content": "hi"}], "big": 2**64 - 1}).encode())
(out / "tour_ctx_edge").write_bytes(b"{{ big }}{{ -small }}{{ small - 1 }}\0" + json.dumps(
    {"messages": [{"role": "user", "content": "hi"}], "big": 2**63 - 1, "small": -2**63}).encode())
PY

# Tokenizers: TOKENIZER.JSON \0 TOKENIZER_CONFIG.JSON \0 TEXT.
text='Hello wörld 🙂 <|im_start|>user\n  12345 <|image_pad|> tabs\tand CRLF\r\n'
for d in tests/fixtures/hf/qwen2_5_omni_tokenizer tests/fixtures/hf/qwen2_5_omni_tokenizer_variant; do
  { cat "$d/tokenizer.json"; printf '\0'; cat "$d/tokenizer_config.json"; printf '\0%b' "$text"; } \
    >"$out/fuzz_tokenizer/$(basename "$d")"
done
for f in tests/fixtures/text/gpt2_tokenizer.json tests/fixtures/text/qwen2_tokenizer.json; do
  { cat "$f"; printf '\0\0%b' "$text"; } >"$out/fuzz_tokenizer/$(basename "$f" .json)"
done
# A tour of the tokenizer.json and tokenizer_config.json features, one change each to the small
# GPT-2 fixture: a random edit of a whole file rarely turns one enum or key into another, and 6
# fuzzing hours had not reached the other normalizers, the Split behaviours or the config's
# special-token maps.
python3 - "$out/fuzz_tokenizer" "$text" <<'PY'
import copy, json, pathlib, sys
out, text = pathlib.Path(sys.argv[1]), sys.argv[2].replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")
base = json.load(open("tests/fixtures/text/gpt2_tokenizer.json"))
split = {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": False}
def tok(**changes):
    t = copy.deepcopy(base)
    for k, v in changes.items():
        if k.startswith("model_"): t["model"][k[6:]] = v
        else: t[k] = v
    return t
variants = {f"norm_{n}": tok(normalizer={"type": n}) for n in ("NFC", "NFD", "NFKC", "NFKD", "Lowercase")}
variants["norm_sequence"] = tok(normalizer={"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "NFC"}]})
for b in ("Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous", "Other"):
    for inv in (False, True):
        variants[f"split_{b}_{inv}"] = tok(pre_tokenizer={"type": "Sequence", "pretokenizers": [
            dict(split, behavior=b, invert=inv), base["pre_tokenizer"]]})
variants["split_string"] = tok(pre_tokenizer={"type": "Sequence", "pretokenizers": [
    dict(split, pattern={"String": "o"}), base["pre_tokenizer"]]})
variants["split_bad_regex"] = tok(pre_tokenizer=dict(split, pattern={"Regex": "(?<=a+)b["}))
variants["unk_in_vocab"] = tok(model_unk_token="<|endoftext|>")
variants["unk_missing"] = tok(model_unk_token="<unk>")
variants["dropout"] = tok(model_dropout=0.1)
variants["subword_prefix"] = tok(model_continuing_subword_prefix="##")
variants["ignore_merges"] = tok(model_ignore_merges=True)
variants["byte_fallback"] = tok(model_byte_fallback=True)
cfg = {"": None, "extra_map": {"extra_special_tokens": {"image_token": "<|endoftext|>"}},
       "extra_list": {"extra_special_tokens": ["<|endoftext|>"], "model_max_length": 512.0},
       "model_specific": {"model_specific_special_tokens": {"audio_token": "<|endoftext|>"},
                          "model_max_length": 1e30, "split_special_tokens": True},
       "bad_types": {"add_prefix_space": "yes", "model_max_length": "x", "add_bos_token": True},
       "decoder_map": {"added_tokens_decoder": {"0": {"content": "<|endoftext|>", "special": True},
                                                "x": {"content": "a"}}, "eos_token": "<|endoftext|>",
                       "pad_token": {"content": "<|endoftext|>"}, "bos_token": None}}
for name, t in variants.items():
    (out / f"tour_{name}").write_bytes(json.dumps(t).encode() + b"\0\0" + text.encode())
for name, c in cfg.items():
    if c is not None:
        (out / f"tour_cfg_{name}").write_bytes(json.dumps(base).encode() + b"\0" + json.dumps(c).encode() + b"\0" + text.encode())

# What 3.7 fuzzing hours (the last 20 minutes from the tour above) had still not reached
# (scripts/fuzz --coverage after the fifth campaign): text that is not UTF-8 after a
# valid lead byte (each class of Unicode's Table 3-7), ids that decode to partial UTF-8 or to a
# token outside the byte table, added tokens with lstrip/rstrip/single_word/normalized, a regex
# with empty matches, consecutive Contiguous delimiters, the nesting limits, and config
# values of the wrong type one at a time.
def write(name, t, text, cfg=None):
    tb = text if isinstance(text, bytes) else text.encode()
    (out / f"tour_{name}").write_bytes(json.dumps(t).encode() + b"\0" + (json.dumps(cfg).encode() if cfg else b"") + b"\0" + tb)
write("bad_utf8", base, b"a\xC3A \xE0\x80 \xED\xA0 \xE1A \xF0\x80 \xF4\x90 \xF1A \xC3")
# The fuzz target also decodes ids read from the text, two bytes each (big-endian, minus 256).
bytelevel = {}
printable = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b]
extra = iter(range(256, 512))
for b in range(256):
    bytelevel[b] = chr(b) if b in printable else chr(next(extra))
def ids_text(ids):
    return b"".join((i + 256).to_bytes(2, "big") for i in ids)
hangul = tok()
hangul["model"]["vocab"]["\ud55c"] = len(hangul["model"]["vocab"])
partial = [base["model"]["vocab"][bytelevel[b]] for b in (0xC3, 0x41, 0xE0, 0x80, 0xF4, 0x90, 0xED)]
write("decode_partial_utf8", hangul, ids_text(partial + [hangul["model"]["vocab"]["\ud55c"], 0]))
for flags in ({"lstrip": True, "rstrip": True}, {"single_word": True}, {"normalized": True}):
    t = tok(normalizer={"type": "NFKC"})
    t["added_tokens"] = [dict(t["added_tokens"][0], **flags)]
    write("added_" + "_".join(flags), t, "a \u3000<|endoftext|>\u2003\u00a0 b a<|endoftext|>b "
          "\uff1c|endoftext|\uff1e \U0001f642<|endoftext|>")
write("split_empty_matches", tok(pre_tokenizer=dict(split, pattern={"Regex": "x*"})), text)
write("split_string_escapes", tok(pre_tokenizer=dict(split, pattern={"String": "\\E."})), "a\\E.b\\Ex")
write("split_contiguous_runs", tok(pre_tokenizer=dict(split, pattern={"String": "l"},
                                                      behavior="Contiguous")), "Hello llama")
deep_norm, deep_pre = {"type": "NFC"}, dict(split)
for _ in range(17):
    deep_norm = {"type": "Sequence", "normalizers": [deep_norm]}
    deep_pre = {"type": "Sequence", "pretokenizers": [deep_pre]}
write("norm_too_deep", tok(normalizer=deep_norm), text)
write("pre_too_deep", tok(pre_tokenizer=deep_pre), text)
write("norm_sequence_no_list", tok(normalizer={"type": "Sequence"}), text)
write("split_bad_pattern", tok(pre_tokenizer=dict(split, pattern={"Glob": "*"})), text)
write("added_no_id", tok(added_tokens=[{"content": {"a": [1, {"b": [2]}]}, "id": list(range(40))}]), text)
for name, c in {"flag_type": {"added_tokens_decoder": {"0": {"content": "<|endoftext|>", "special": "yes"}}},
                "split_special_type": {"split_special_tokens": "yes"},
                "max_length_type": {"model_max_length": "x"},
                "added_id_gap": {"added_tokens_decoder": {"5000": {"content": "<new>"}}},
                "added_next_id": {"added_tokens_decoder": {"700": {"content": "<new>", "lstrip": True}}},
                "named_override": {"eos_token": "<|endoftext|>",
                                   "model_specific_special_tokens": {"eos_token": "<|endoftext|>",
                                                                     "video_token": "<v>"}},
                "token_type": {"eos_token": [1, 2, {"x": "y" * 80}]}}.items():
    write("cfg2_" + name, base, text, c)
PY

# Processor configs: PREPROCESSOR_CONFIG.JSON \0 height, width, frames, samples (uint32 LE): the
# real Qwen2.5-Omni file of the e2e fixture, a transformers 5 image + video processor file, a PIL
# one without resize.
python3 - "$out/fuzz_preprocessor" <<'PY'
import json, pathlib, struct, sys
out = pathlib.Path(sys.argv[1])
real = pathlib.Path("tests/fixtures/hf/qwen2_5_omni_e2e/preprocessor_config.json").read_bytes()
v5 = {"image_processor_type": "Qwen2VLImageProcessorFast", "video_processor_type": "Qwen2VLVideoProcessor",
      "size": {"shortest_edge": 3136, "longest_edge": 12845056}, "patch_size": 14,
      "temporal_patch_size": 2, "merge_size": 2, "min_frames": 4, "max_frames": 768, "fps": 2.0,
      "image_mean": [0.5, 0.5, 0.5], "image_std": 0.5, "rescale_factor": 0.00392156862745098,
      "feature_size": 80, "chunk_length": 30.0, "padding_value": 0.0}
pil = {"image_processor_type": "Qwen2VLImageProcessorPil", "do_resize": False, "min_pixels": 784,
       "max_pixels": 1003520, "do_normalize": True, "dither": 0.0}
for name, cfg, dims in [("qwen2_5_omni", real, (480, 640, 250, 48000)),
                        ("transformers5", json.dumps(v5).encode(), (1080, 1920, 3000, 160000)),
                        ("pil_no_resize", json.dumps(pil).encode(), (56, 84, 7, 10))]:
    (out / name).write_bytes(cfg + b"\0" + struct.pack("<4I", *dims))
PY

# safetensors: the fixtures, and shards cut to their header plus a few tensors.
cp tests/fixtures/fusion/python_written.safetensors "$out/fuzz_safetensors/"
python3 - "$out/fuzz_safetensors" <<'PY'
import json, pathlib, struct, sys
out = pathlib.Path(sys.argv[1])
for f in sorted(pathlib.Path("tests/fixtures/hf/qwen2_5_omni_tiny").glob("*.safetensors"))[:1] + \
         [pathlib.Path("tests/fixtures/e2e/shapes_voices_parity.safetensors")]:
    b = f.read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    keep = {k: v for k, v in h.items() if k == "__metadata__"}
    items = sorted((v["data_offsets"][0], k, v) for k, v in h.items() if k != "__metadata__")
    data = b""
    for _, k, v in items[:6]:
        lo, hi = v["data_offsets"]
        if hi - lo > 4096: continue
        keep[k] = dict(v, data_offsets=[len(data), len(data) + hi - lo])
        data += b[8 + n + lo:8 + n + hi]
    hj = json.dumps(keep).encode()
    hj += b" " * ((8 - (8 + len(hj)) % 8) % 8)
    (out / (f.stem + "_cut")).write_bytes(struct.pack("<Q", len(hj)) + hj + data)
PY

# Checkpoint JSON: CONFIG \0 INDEX \0 GENERATION_CONFIG.
c=tests/fixtures/hf/qwen2_5_omni_tiny
{ cat $c/config.json; printf '\0'; cat $c/model.safetensors.index.json; printf '\0'; cat $c/generation_config.json; } \
  >"$out/fuzz_checkpoint/qwen2_5_omni_tiny"
printf '{"architectures": ["Qwen2ForCausalLM"], "tie_word_embeddings": true, "eos_token_id": [1, 2], "num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2}\0{"metadata": {"total_size": 8}, "weight_map": {"model.embed_tokens.weight": "a.safetensors", "lm_head.weight": "b.safetensors"}}\0' \
  >"$out/fuzz_checkpoint/qwen2_small"

# Media: the fixture clip and tiny files of common containers and codecs.
cp tests/fixtures/qwen_processor/clip_64x48.mp4 "$out/fuzz_media/"
ff() { ffmpeg -v error -nostdin -y "$@"; }
src_v=(-f lavfi -i "testsrc=size=32x24:rate=10:duration=0.3")
src_a=(-f lavfi -i "sine=frequency=440:sample_rate=8000:duration=0.3")
ff "${src_v[@]}" "${src_a[@]}" -c:v mpeg4 -c:a pcm_s16le -shortest "$out/fuzz_media/mpeg4_pcm.avi"
ff "${src_v[@]}" "${src_a[@]}" -c:v libvpx -c:a libvorbis -shortest "$out/fuzz_media/vp8_vorbis.webm" || true
ff "${src_v[@]}" -c:v libx264 -pix_fmt yuv420p -metadata:s:v rotate=90 "$out/fuzz_media/h264_rot.mp4" || true
ff "${src_v[@]}" -c:v mjpeg "$out/fuzz_media/mjpeg.mkv"
ff "${src_v[@]}" -vf format=rgb8 -c:v gif "$out/fuzz_media/anim.gif"
ff "${src_a[@]}" -c:a flac "$out/fuzz_media/tone.flac"
ff "${src_a[@]}" -c:a libmp3lame "$out/fuzz_media/tone.mp3" || true
ff "${src_a[@]}" -c:a aac "$out/fuzz_media/tone.m4a"

# WAV / PCM.
for codec in pcm_s16le pcm_u8 pcm_f32le pcm_s24le pcm_mulaw adpcm_ms adpcm_ima_wav; do
  ff -f lavfi -i "sine=frequency=300:sample_rate=8000:duration=0.05" -ac 2 -c:a $codec \
    "$out/fuzz_wav/$codec.wav"
done
ff -f lavfi -i "sine=frequency=300:sample_rate=22050:duration=0.05" -c:a pcm_s16le -rf64 always \
  "$out/fuzz_wav/rf64.wav"

# Images: the small fixtures and one tiny image per format OpenCV decodes.
cp tests/fixtures/image/edges.png "$out/fuzz_image/"
for ext in png jpg bmp tiff webp ppm pgm; do
  ff -f lavfi -i "testsrc=size=12x8:duration=0.1" -frames:v 1 "$out/fuzz_image/tiny.$ext" || true
done
ff -f lavfi -i "testsrc=size=12x8:duration=0.1" -frames:v 1 -pix_fmt rgba "$out/fuzz_image/rgba.png"
ff -f lavfi -i "testsrc=size=12x8:duration=0.1" -frames:v 1 -pix_fmt gray16be "$out/fuzz_image/gray16.png"
