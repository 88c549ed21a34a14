"""Names from a model never reach generated C unescaped: the sanitizer's identifiers, comments and
string literals, a C program that reads every string literal back byte for byte, and a model
whose graph, inputs, params and symbols carry hostile names built and run on host."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from lmc.backends.c.sanitize import c_comment, c_ident, c_string
from lmc.ir import OPS, DType, Graph, TensorType, sym

from .hostbuild import CC, check_host, needs_cc, runner

HOSTILE = [
    '*/ system("x"); /*',
    'say "hi"',
    "back\\slash",
    "new\nline\r\n",
    "tab\tstop",
    "??/",
    "??=define X 1",
    "#include <stdio.h>",
    "%s%n",
    "\\x41\\101",
    "end\\",
    "ünïcødé ✓",
    "\u2028 \x00 \x7f",
    "",
    "// not a comment",
    "/* nested */ */ /*",
    "int",
    "D",
    "0start",
    "__reserved",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_comment_text_is_inert(text):
    s = c_comment(text)
    assert "*/" not in s and "/*" not in s and "??" not in s
    assert all(32 <= ord(c) < 127 for c in s) and not s.endswith("\\")


@pytest.mark.parametrize("text", HOSTILE)
def test_identifiers(text):
    ident = c_ident("lmc", text) if text else c_ident(text)
    assert ident.isidentifier() and ident.isascii()
    assert not ident.startswith("__") and ident not in ("int", "return")


@pytest.mark.skipif(CC is None, reason="no C compiler (cc) on PATH")
def test_string_literals_hold_the_exact_bytes(tmp_path):
    texts = [t.replace("\x00", "") for t in HOSTILE]  # C strings end at NUL
    body = ", ".join(c_string(t) for t in texts)
    src = tmp_path / "strings.c"
    src.write_text(
        "#include <stdio.h>\n"
        f"static const char *const s[] = {{{body}}};\n"
        "int main(void) {\n"
        f"  for (int i = 0; i < {len(texts)}; i++) {{\n"
        "    const unsigned char *p = (const unsigned char *)s[i];\n"
        '    for (; *p; p++) printf("%02x", *p);\n'
        '    printf("\\n");\n'
        "  }\n"
        "  return 0;\n"
        "}\n"
    )
    exe = tmp_path / "strings"
    r = subprocess.run(
        [CC, "-std=c99", "-trigraphs", "-Werror", str(src), "-o", str(exe)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True).stdout.splitlines()
    assert out == [t.encode("utf-8").hex() for t in texts]


def hostile_graph() -> Graph:
    name = HOSTILE[0]
    n, d = sym("int"), sym("D")
    g = Graph(name, {"int": (1, 8), "D": (1, 4)})
    xs = [g.input(h, TensorType(DType.f32, [n, d])) for h in HOSTILE[:8]]
    w = g.param(HOSTILE[6], np.full((1, 1), 0.5, np.float32), name=HOSTILE[9])
    k = g.param(HOSTILE[11], np.arange(4, dtype=np.float32).reshape(4, 1), name=HOSTILE[10])
    acc = xs[0]
    for x in xs[1:]:
        acc = g.apply(OPS["add"](), acc, g.apply(OPS["mul"](), x, w))
    lin = g.apply(OPS["matmul"](), acc, g.apply(OPS["expand"](shape=(d, 1)), w))
    g.set_outputs([acc, g.apply(OPS["tanh"](), lin), k])
    return g


@needs_cc
def test_hostile_model_builds_and_runs():
    g = hostile_graph()
    out = check_host(g, label="hostile")
    code = (out / "src" / "model.c").read_text(encoding="utf-8")
    assert code.isascii()
    for line in code.splitlines():
        if 'system("x")' in line:  # only as inert text inside a one-line comment
            assert line.lstrip().startswith("/*") and line.rstrip().endswith("*/"), line
        if line.lstrip().startswith("/*"):
            assert line.rstrip().endswith("*/") and line.count("*/") == 1, line
    r = runner(out)
    assert [s.name for s in r.inputs] == HOSTILE[:8]
    r.close()
    trig = subprocess.run(
        [CC, "-std=c11", "-trigraphs", "-fsyntax-only", "-Werror=trigraphs", "model.c"],
        cwd=out / "src",
        capture_output=True,
        text=True,
    )
    assert trig.returncode == 0, trig.stderr
