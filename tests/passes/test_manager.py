"""The pass manager: contract order, specs, timings and stats, dumps, property checks."""

from __future__ import annotations

import pytest
from lmc.ir import parse_ir, print_graph
from lmc.ir.errors import PassError
from lmc.ir.graph import Graph
from lmc.ir.op import OPS
from lmc.passes import DEFAULT_PIPELINE, PASSES, PassContext, PassInfo, Pipeline, Prop
from lmc.passes.manager import PROP_CHECKS, graph_pass

from tests.passes.harness import check_golden, golden_paths

GOLDEN = golden_paths("pipeline_")

TEXT = """graph @g [s0 in 1..8] {
  %x = input() {index=0} : f32[s0, 4]
  %0 = constant() {value=[1.0]} : f32[]
  %1 = mul(%0, %x) : f32[s0, 4]
  %2 = shape(%1) {start=0, end=none} : i64[2]
  %3 = exp(%x) : f32[s0, 4]
  %4 = exp(%x) : f32[s0, 4]
  %5 = add(%3, %4) : f32[s0, 4]
  %6 = neg(%x) : f32[s0, 4]
  return %5, %2
}
"""


def make_pass(name, fn, requires=(Prop.TYPED,), ensures=(Prop.TYPED,), breaks=()) -> PassInfo:
    """A pass for one test, not put in the registry."""
    return PassInfo(
        name, fn, frozenset(requires), frozenset(ensures), frozenset(breaks), None, "test pass"
    )


def add_dead_node(g: Graph, ctx: PassContext) -> Graph:
    g.apply(OPS["neg"](), g.inputs[0])
    return g


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path, request) -> None:
    check_golden(path, request.config.getoption("--update-golden"))


# -- contracts checked before running --------------------------------------------------------
def test_bad_order_is_rejected_before_running() -> None:
    ran = []

    def needs_folded(g: Graph, ctx: PassContext) -> Graph:
        ran.append(True)
        return g

    p = make_pass("needs_folded", needs_folded, requires=(Prop.TYPED, Prop.FOLDED))
    with pytest.raises(PassError) as e:
        Pipeline(["canonicalize", p])
    msg = str(e.value)
    assert "position 1" in msg and "needs_folded" in msg and "folded" in msg
    assert "fold_constants" in msg, "the error suggests a pass that ensures the property"
    Pipeline(["fold_constants", p]).run(parse_ir(TEXT))
    assert ran == [True]


def test_a_broken_property_must_be_ensured_again() -> None:
    p = make_pass("needs_canonical", lambda g, ctx: g, requires=(Prop.CANONICAL,))
    Pipeline(["canonicalize", "eliminate_dead_nodes", p])  # DCE keeps CANONICAL
    with pytest.raises(PassError, match="needs_canonical requires \\['canonical'\\]"):
        Pipeline(["canonicalize", "fold_constants", p])  # folding breaks it


def test_unknown_pass_is_named() -> None:
    with pytest.raises(PassError, match="unknown pass 'fold_everything'.*canonicalize"):
        Pipeline(["canonicalize", "fold_everything"])


def test_from_spec() -> None:
    assert [p.name for p in Pipeline.from_spec("default").passes] == DEFAULT_PIPELINE
    pipe = Pipeline.from_spec(" eliminate_dead_nodes , default")
    assert [p.name for p in pipe.passes] == ["eliminate_dead_nodes", *DEFAULT_PIPELINE]
    with pytest.raises(PassError, match="empty pass name"):
        Pipeline.from_spec("canonicalize,,fold_constants")
    with pytest.raises(PassError, match="unknown pass 'nope'"):
        Pipeline.from_spec("canonicalize,nope")


def test_default_pipeline_promises() -> None:
    assert Pipeline.from_spec("default").props_after() == {
        Prop.TYPED,
        Prop.CANONICAL,
        Prop.NO_COMMON_SUBEXPRESSIONS,
        Prop.NO_DEAD_NODES,
    }


def test_canonicalize_really_can_break_folded() -> None:
    """Why canonicalize declares `breaks FOLDED`: a slice with a symbolic bound cannot be
    folded, but canonicalize sees it takes the whole constant and hands the constant on."""
    g = parse_ir("""graph @g [s0 in 1..4] {
  %0 = constant() {value=[1, 2, 3]} : i64[3]
  %1 = slice(%0) {axes=[0], starts=[0], ends=[s0 + 3], steps=[1]} : i64[3]
  %2 = add(%1, %0) : i64[3]
  return %2
}
""")
    out = Pipeline(["fold_constants", "canonicalize"]).run(g, PassContext(check_props=True))
    assert PROP_CHECKS[Prop.FOLDED](out) is not None
    assert Pipeline.from_spec("fold_constants,canonicalize").props_after() == {
        Prop.TYPED,
        Prop.CANONICAL,
    }


def test_builtin_passes_are_registered_with_docstrings() -> None:
    Pipeline([])  # loads the built-in passes
    for name in DEFAULT_PIPELINE:
        assert name in PASSES and len(PASSES[name].doc) > 80
        assert PASSES[name].tolerance is None, "the built-in passes are exact"


def test_registration_rejects_duplicates_and_missing_docstrings() -> None:
    with pytest.raises(PassError, match="docstring"):

        @graph_pass()
        def undocumented_pass(g: Graph, ctx: PassContext) -> Graph:
            return g

    with pytest.raises(PassError, match="registered twice"):

        @graph_pass()
        def canonicalize(g: Graph, ctx: PassContext) -> Graph:
            """Another canonicalize."""
            return g

    assert "undocumented_pass" not in PASSES


# -- running ---------------------------------------------------------------------------------
def test_default_pipeline_runs_and_records_timings_and_stats() -> None:
    g = parse_ir(TEXT)
    ctx = PassContext(check_props=True)
    out = Pipeline.from_spec("default").run(g, ctx)
    assert print_graph(g) == TEXT, "the input graph is not modified"
    assert set(ctx.timings) == set(DEFAULT_PIPELINE)
    assert all(t >= 0 for t in ctx.timings.values())
    assert ctx.stats["canonicalize"]["shape_to_constant"] == 1
    assert ctx.stats["canonicalize"]["mul_one"] == 1
    assert ctx.stats["eliminate_common_subexpressions"]["nodes_merged"] == 1
    assert ctx.stats["eliminate_dead_nodes"]["nodes_removed"] == 1
    assert ctx.current == ""
    assert [n.op.name for n in out.nodes] == ["input", "constant", "exp", "add"]


def test_dump_dir_from_env_writes_the_ir_after_every_pass(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LMC_DUMP", str(tmp_path / "dump"))
    out = Pipeline.from_spec("default").run(parse_ir(TEXT))
    files = sorted(p.name for p in (tmp_path / "dump").iterdir())
    assert files == [f"{i:02d}-{name}.lmc" for i, name in enumerate(DEFAULT_PIPELINE)]
    last = (tmp_path / "dump" / files[-1]).read_text()
    assert last == print_graph(out)
    first = parse_ir((tmp_path / "dump" / files[0]).read_text())
    assert not any(n.op.name == "shape" for n in first.nodes)


def test_print_after_all() -> None:
    lines: list[str] = []
    ctx = PassContext(print_after_all=True, printer=lines.append)
    out = Pipeline(["canonicalize", "eliminate_dead_nodes"]).run(parse_ir(TEXT), ctx)
    assert len(lines) == 2
    assert lines[0].startswith("// ----- IR after canonicalize -----\ngraph @g")
    assert lines[1].endswith(print_graph(out))


def test_dump_dir_in_the_context(tmp_path) -> None:
    ctx = PassContext(dump_dir=tmp_path)
    Pipeline(["eliminate_dead_nodes"]).run(parse_ir(TEXT), ctx)
    assert [p.name for p in tmp_path.iterdir()] == ["00-eliminate_dead_nodes.lmc"]


# -- property checks catch passes that lie about their contract ------------------------------
def test_check_props_catches_a_false_ensures() -> None:
    liar = make_pass("liar", add_dead_node, ensures=(Prop.TYPED, Prop.NO_DEAD_NODES))
    Pipeline([liar]).run(parse_ir(TEXT))  # unchecked: nobody notices
    with pytest.raises(PassError, match="pass liar ensures no_dead_nodes, but: dead node"):
        Pipeline([liar]).run(parse_ir(TEXT), PassContext(check_props=True))


def test_check_props_catches_an_undeclared_break() -> None:
    sneaky = make_pass("sneaky", add_dead_node)  # declares no breaks
    pipe = Pipeline(["eliminate_dead_nodes", sneaky])
    with pytest.raises(PassError, match="pass sneaky keeps .*no_dead_nodes, but"):
        pipe.run(parse_ir(TEXT), PassContext(check_props=True))
    honest = make_pass("honest", add_dead_node, breaks=(Prop.NO_DEAD_NODES,))
    Pipeline(["eliminate_dead_nodes", honest]).run(parse_ir(TEXT), PassContext(check_props=True))


def test_invalid_ir_after_a_pass_names_it() -> None:
    def break_types(g: Graph, ctx: PassContext) -> Graph:
        g.nodes[-1].outputs[0].type = g.inputs[0].type.with_shape((7,))
        return g

    with pytest.raises(PassError, match="IR invalid after pass break_types"):
        Pipeline([make_pass("break_types", break_types)]).run(parse_ir(TEXT))


def test_a_failing_pass_is_named_in_the_traceback() -> None:
    def crash(g: Graph, ctx: PassContext) -> Graph:
        raise ValueError("boom")

    with pytest.raises(ValueError) as e:
        Pipeline([make_pass("crash", crash)]).run(parse_ir(TEXT))
    assert any("in pass crash" in note for note in e.value.__notes__)


def test_a_pass_must_return_a_graph() -> None:
    with pytest.raises(PassError, match="returned NoneType"):
        Pipeline([make_pass("nothing", lambda g, ctx: None)]).run(parse_ir(TEXT))


def test_calling_a_pass_directly_records_stats_under_its_name() -> None:
    ctx = PassContext()
    PASSES["eliminate_dead_nodes"](parse_ir(TEXT), ctx)
    assert ctx.stats["eliminate_dead_nodes"]["nodes_removed"] == 1
    assert ctx.current == ""
