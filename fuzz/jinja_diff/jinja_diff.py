#!/usr/bin/env python3
"""Differential fuzzing of omnipipe's Jinja interpreter against transformers' jinja2 environment.

Random templates (statements, whitespace control, expressions, filters, tests, methods, macros)
are rendered by transformers' _compile_jinja_template and by fuzz/jinja_diff/jinja_driver.cpp; every
output must be identical, or both must raise (the interpreter may also raise where jinja2 renders
something it cannot reproduce, e.g. a generator's repr: counted as we_err). Prints each DIFF /
THEY_ERR / CRASH and a summary.

  ~/.cache/omnipipe-ref-venv/bin/python fuzz/jinja_diff/jinja_diff.py SEED COUNT /tmp/jinja_driver
"""
import json, random, subprocess, sys
from transformers.utils.chat_template_utils import _compile_jinja_template
CTX = {"s": "Hé 🙂 x", "n": 7, "x": 2.5, "t": True, "f": False, "z": None, "l": [3, 1, 2], "e": [],
       "d": {"b": 1, "a": [1, 2], "k": "v"}, "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text", "text": "yo"}]}],
       "w": " a\tb \n"}
rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
ATOMS = ["loop.cycle(1, 2)", "loop.previtem", "ns.a", "'a\\n\\t\\u00e9'", "9223372036854775807", "1e308", "-0.0", "0.1", "'%s'", "range(4)", "d.items()", "dict(a=1)", "namespace(x=1)", "s", "n", "x", "t", "f", "z", "l", "e", "d", "msgs", "w", "nope", "1", "0", "-2", "2.0", "'a'", "''", "\"q'\"",
         "[1, 'b']", "{'k': 2}", "(1, 2)", "none", "true", "loop", "ns", "msgs[0]", "d.k", "d['a']", "l[-1]", "s[1:]", "l[::-1]", "d.b"]
BIN = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">=", "in", "not in", "and", "or", "**"]
FILT = ["length", "trim", "tojson", "string", "upper", "lower", "first", "last", "list", "join(',')", "default('D')", "sort",
        "reverse", "int", "float", "abs", "unique", "items", "select('string')", "map('string')", "join", "title", "count",
        "tojson(indent=2)", "replace('a','b')", "round", "sum", "min", "max", "capitalize", "indent(2)", "selectattr('role')",
        "map(attribute='role')", "d", "default('x', true)", "batch"]
TESTS = ["string", "number", "none", "defined", "undefined", "mapping", "iterable", "sequence", "odd", "even", "integer",
         "float", "boolean", "true", "false", "eq 1", "in l", "divisibleby 2", "lower", "callable", "sameas none"]
METH = [".strip()", ".split()", ".startswith('H')", ".endswith('x')", ".lstrip()", ".rstrip('x')", ".upper()", ".items()",
        ".get('k')", ".keys()", ".values()", ".split(' ', 1)", ".title()", ".count('a')", ".find('x')", ".replace('x','y')",
        ".index(1)", ".append(1)", ".content", ".role", "[0]", "[1:]", "['k']", ".get('zz', 5)"]
def expr(d=0):
    r = rng.random()
    if d > 3 or r < 0.3: return rng.choice(ATOMS)
    if r < 0.45: return f"{expr(d+1)} {rng.choice(BIN)} {expr(d+1)}"
    if r < 0.6: return f"{expr(d+1)} | {rng.choice(FILT)}"
    if r < 0.7: return f"{expr(d+1)} is {rng.choice(['', 'not '])}{rng.choice(TESTS)}"
    if r < 0.8: return f"{expr(d+1)}{rng.choice(METH)}"
    if r < 0.85: return f"({expr(d+1)} if {expr(d+1)} else {expr(d+1)})"
    if r < 0.9: return f"not {expr(d+1)}"
    if r < 0.95: return f"[{expr(d+1)}, {expr(d+1)}]"
    return f"({expr(d+1)})"
WS = ["", " ", "\n", "  \n  ", "\t", "\n\n"]
def ws(): return rng.choice(WS)
def dash(): return rng.choice(["", "", "-", "+"])
def stmt(d=0):
    r = rng.random()
    o, c = "{%" + dash(), dash().replace("+", "") + "%}"
    if d > 2 or r < 0.35: return ws() + "{{" + rng.choice(["", "-"]) + " " + expr() + " " + rng.choice(["", "-"]) + "}}" + ws()
    if r < 0.5: return f"{ws()}{o} if {expr()} {c}{body(d+1)}{o} elif {expr()} {c}{body(d+1)}{o} else {c}{body(d+1)}{o} endif {c}{ws()}"
    if r < 0.65: return f"{ws()}{o} for {rng.choice(['i', 'k, v', 'm'])} in {rng.choice(['l', 'msgs', 'd.items()', 's', 'e', 'range(3)', 'd', 'nope', 'msgs[::-1]'])} {rng.choice(['', 'if i'])} {c}{body(d+1)}{{{{ loop.index }}}}{o} endfor {c}{ws()}"
    if r < 0.75: return f"{ws()}{o} set {rng.choice(['q', 'ns.a', 'n'])} = {expr()} {c}{ws()}{{{{ q }}}}"
    if r < 0.8: return f"{ws()}{o} set q {c}{body(d+1)}{o} endset {c}{{{{ q }}}}"
    if r < 0.85: return f"{ws()}{{#{dash()} comment {dash()}#}}{ws()}"
    if r < 0.87: return "{% raw %} {{ raw }} {% endraw %}"
    if r < 0.9: return f"{o} macro mac(a, b=2) {c}{body(d+1)}{{{{ a }}}}{o} endmacro {c}{{{{ mac({expr()}) }}}}{{{{ mac(1, b={expr()}) }}}}"
    return ws() + "text " + rng.choice(["é", "🙂", "{", "}", "%"]) + ws()
def body(d): return "".join(stmt(d) for _ in range(rng.randint(1, 3)))
p = subprocess.Popen([sys.argv[3] if len(sys.argv) > 3 else "/tmp/jinja_driver"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
stats = {"same": 0, "both_err": 0, "we_err": 0, "they_err": 0, "diff": 0, "crash": 0}
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
for i in range(N):
    t = "{% set ns = namespace(a=1) %}" + body(0)
    try:
        exp = _compile_jinja_template(t).render(**CTX); err = None
    except Exception as e:
        exp = None; err = f"{type(e).__name__}: {e}"
    p.stdin.write(json.dumps({"t": t, "c": CTX}) + "\n"); p.stdin.flush()
    line = p.stdout.readline()
    if not line: print("DRIVER DIED on", repr(t)); break
    got = json.loads(line)
    if "crash" in got: stats["crash"] += 1; print("CRASH", repr(t), got); continue
    if err and "err" in got: stats["both_err"] += 1
    elif err: stats["they_err"] += 1; print("THEY_ERR", repr(t), "|", err[:100], "| we:", repr(got["ok"])[:100])
    elif "err" in got: stats["we_err"] += 1; print("WE_ERR", repr(t), "|", got["err"][:150], "| they:", repr(exp)[:80])
    elif got["ok"] == exp: stats["same"] += 1
    else: stats["diff"] += 1; print("DIFF", repr(t), "\n  they:", repr(exp)[:200], "\n  we:  ", repr(got["ok"])[:200])
print(stats)
