"""Parser errors: each names line and column with a caret under the culprit, and says what
was expected; plus the lexical rules (comments, quoting, numbers) that the printer relies on."""

from __future__ import annotations

import math

import pytest
from lmc.ir import parse_ir, print_graph
from lmc.ir.errors import LmcError, ParseError

GOOD = """graph @g [s0 in 1..8] {
  %x = input() {index=0} : f32[s0, 4]
  %0 = relu(%x) : f32[s0, 4]
  return %0
}
"""


def parse_error(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_ir(text)
    assert isinstance(info.value, LmcError)
    return info.value


def assert_points_at(err: ParseError, text: str, fragment: str, occurrence: int = 0) -> None:
    """The error's line/col is the `occurrence`-th position of `fragment`, and the message
    repeats that source line with a caret under the column."""
    pos = -1
    for _ in range(occurrence + 1):
        pos = text.index(fragment, pos + 1)
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    assert (err.line, err.col) == (line, col), str(err)
    msg_lines = str(err).splitlines()
    assert msg_lines[0].startswith(f"{line}:{col}: ")
    assert msg_lines[1] == "  " + text.splitlines()[line - 1]
    assert msg_lines[2] == "  " + " " * (col - 1) + "^"


def test_good_text_parses_and_prints_back():
    assert print_graph(parse_ir(GOOD)) == GOOD


def test_comments_and_whitespace_are_ignored():
    text = (
        "// header comment\ngraph @g [s0 in 1..8] {   // trailing\n"
        "  %x = input() {index=0} : f32[s0, 4]\n\n\t// a comment line\n"
        "  %0 = relu(%x)   :   f32[s0,4]\n  return %0 // done\n}\n// end\n"
    )
    assert print_graph(parse_ir(text)) == GOOD


def test_unknown_op():
    text = GOOD.replace("relu(%x)", "frobnicate(%x)")
    err = parse_error(text)
    assert "unknown op 'frobnicate'" in str(err)
    assert_points_at(err, text, "frobnicate")


def test_undefined_value():
    text = GOOD.replace("relu(%x)", "relu(%y)")
    err = parse_error(text)
    assert "undefined value %y" in str(err)
    assert_points_at(err, text, "%y")


def test_use_before_definition_is_undefined():
    text = GOOD.replace(
        "  return %0", "  %1 = relu(%2) : f32[s0, 4]\n  %2 = relu(%1) : f32[s0, 4]\n  return %2"
    )
    err = parse_error(text)
    assert "undefined value %2" in str(err)
    assert_points_at(err, text, "%2)")


def test_duplicate_definition():
    text = GOOD.replace("%0 = relu(%x)", "%x = relu(%x)")
    err = parse_error(text)
    assert "%x defined twice" in str(err)
    assert_points_at(err, text, "%x", occurrence=1)


def test_duplicate_result_names_in_one_statement():
    text = GOOD.replace("  return %0", "  %1, %1 = relu(%x) : f32[s0, 4], f32[s0, 4]\n  return %0")
    assert "defined twice" in str(parse_error(text))


def test_numbered_and_quoted_names_are_distinct():
    text = (
        'graph @g {\n  %"0" = input() {index=0} : f32[2]\n'
        '  %0 = relu(%"0") : f32[2]\n  return %0\n}\n'
    )
    g = parse_ir(text)
    assert g.inputs[0].name == "0"
    assert print_graph(g) == text


def test_undeclared_symbol_in_type():
    text = GOOD.replace("%0 = relu(%x) : f32[s0, 4]", "%0 = relu(%x) : f32[s1, 4]")
    err = parse_error(text)
    assert "undeclared symbol 's1'" in str(err)
    assert_points_at(err, text, "s1")


def test_undeclared_symbol_in_attribute():
    text = GOOD.replace("{index=0}", "{index=n}")
    err = parse_error(text)
    assert "undeclared symbol 'n'" in str(err)


def test_bad_attribute_name_lists_the_ops_attributes():
    text = GOOD.replace("{index=0}", "{idx=0}")
    err = parse_error(text)
    assert "input has no attribute 'idx' (it has: index)" in str(err)
    assert_points_at(err, text, "idx")
    text = GOOD.replace("relu(%x)", "relu(%x) {alpha=1.0}")
    assert "relu has no attribute 'alpha' (it has: none)" in str(parse_error(text))


def test_bad_attribute_value():
    text = GOOD.replace("{index=0}", '{index="zero"}')
    err = parse_error(text)
    assert "input.index: expected an integer" in str(err)
    assert_points_at(err, text, '"zero"')
    text = GOOD.replace("{index=0}", "{index=1.5}")
    assert "expected an integer" in str(parse_error(text))


def test_attribute_given_twice():
    text = GOOD.replace("{index=0}", "{index=0, index=0}")
    err = parse_error(text)
    assert "attribute 'index' given twice" in str(err)
    assert_points_at(err, text, "index", occurrence=1)


def test_trailing_garbage():
    text = GOOD + "graph"
    err = parse_error(text)
    assert "end of input" in str(err)
    assert_points_at(err, text, "graph", occurrence=1)


def test_missing_closing_brace_reports_end_of_input():
    text = GOOD.rstrip().rstrip("}")
    assert "expected '}', got 'end of input'" in str(parse_error(text))


def test_unexpected_character():
    text = GOOD.replace("relu(%x)", "relu(%x) $")
    err = parse_error(text)
    assert "unexpected character '$'" in str(err)
    assert_points_at(err, text, "$")


def test_unknown_dtype():
    text = GOOD.replace("%0 = relu(%x) : f32", "%0 = relu(%x) : f31")
    err = parse_error(text)
    assert "unknown dtype 'f31'" in str(err)


def test_result_and_type_counts_must_agree():
    text = GOOD.replace(": f32[s0, 4]\n  return", ": f32[s0, 4], f32[s0, 4]\n  return")
    assert "1 results but 2 types" in str(parse_error(text))


@pytest.mark.parametrize(
    "header, message",
    [
        ("[s0 in 0..8]", "need 1 <= lo <= hi"),
        ("[s0 in 9..8]", "need 1 <= lo <= hi"),
        ("[s0 in 1..8, s0 in 1..2]", "declared twice"),
        ("[f32 in 1..8]", "cannot name a symbol"),
        ("[floor in 1..8]", "cannot name a symbol"),
        ("[a.b in 1..8]", "not an identifier"),
        ("[s0 in 1..8.5]", "expected an integer"),
    ],
)
def test_bad_symbol_declarations(header, message):
    text = GOOD.replace("[s0 in 1..8]", header)
    assert message in str(parse_error(text))


def test_dims_must_be_integer_expressions():
    text = GOOD.replace("%0 = relu(%x) : f32[s0, 4]", "%0 = relu(%x) : f32[s0 / 2, 4]")
    assert "not an integer expression" in str(parse_error(text))
    text = GOOD.replace("%0 = relu(%x) : f32[s0, 4]", "%0 = relu(%x) : f32[1.5, 4]")
    assert "a dim must be an integer expression" in str(parse_error(text))


def test_error_position_on_later_lines_and_columns():
    text = GOOD.replace("  return %0", "  %1 = relu(%0) : f32[s0, 4]\n  return %0, %9")
    err = parse_error(text)
    assert err.line == 5
    assert_points_at(err, text, "%9")


def test_symbolic_dim_expressions_and_functions():
    text = (
        "graph @g [s0 in 1..8, s1 in 2..4] {\n"
        "  %x = input() {index=0} : f32[2*s0 + 1, floor(s1/2), Max(s0, s1), Mod(s0, 3)]\n"
        "  return %x\n}\n"
    )
    g = parse_ir(text)
    assert print_graph(g) == text
    assert g.inputs[0].type.concrete({"s0": 3, "s1": 4}) == (7, 2, 4, 0)


def test_float_attribute_spellings():
    text = (
        "graph @g {\n  %x = input() {index=0} : f32[3]\n"
        "  %0 = constant() {value=[1e-05, -inf, nan, -0.0, 2.5e+300]} : f32[5]\n"
        "  return %0\n}\n"
    )
    values = parse_ir(text).nodes[1].op.value
    assert values[0] == 1e-05 and values[1] == -math.inf and math.isnan(values[2])
    assert math.copysign(1.0, values[3]) == -1.0 and values[4] == 2.5e300
    assert print_graph(parse_ir(text)) == text


def test_strings_use_json_escapes():
    text = (
        'graph @"g \\"q\\"\\n" {\n'
        '  %"a b" = param() {key="line\\nbreak \\u00e9 \\\\"} : f32[2]\n'
        '  return %"a b"\n}\n'
    )
    g = parse_ir(text)
    assert g.name == 'g "q"\n'
    assert g.nodes[0].op.key == "line\nbreak é \\"
    assert g.nodes[0].out.name == "a b"
    assert print_graph(g) == text
