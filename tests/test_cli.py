"""The `lmc` command: IR in and out, passes, DOT, output files, and one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from lmc import __version__
from lmc.cli import graph_to_dot, main
from lmc.ir import parse_ir

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "mlp.lmc"

REDUNDANT = """graph @g [s0 in 1..8] {
  %x = input() {index=0} : f32[s0, 4]
  %0 = relu(%x) : f32[s0, 4]
  %1 = relu(%x) : f32[s0, 4]
  %2 = add(%0, %1) : f32[s0, 4]
  %3 = mul(%x, %x) : f32[s0, 4]
  return %2
}
"""


def lmc(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def canonical(path: Path) -> str:
    return "".join(
        line for line in path.read_text().splitlines(keepends=True) if not line.startswith("//")
    )


@pytest.fixture
def redundant(tmp_path) -> Path:
    p = tmp_path / "redundant.lmc"
    p.write_text(REDUNDANT)
    return p


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lmc {__version__}"


def test_no_command_prints_help(capsys):
    code, _, err = lmc(capsys)
    assert code == 2 and "usage: lmc" in err


def test_ir_prints_canonical_text(capsys):
    code, out, err = lmc(capsys, "ir", str(MLP))
    assert (code, err) == (0, "")
    assert out == canonical(MLP)


def test_ir_reads_stdin(capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(REDUNDANT))
    code, out, _ = lmc(capsys, "ir", "-")
    assert code == 0 and out == REDUNDANT


def test_default_passes_simplify(capsys, redundant):
    code, out, err = lmc(capsys, "ir", str(redundant), "--passes", "default")
    assert code == 0, err
    g = parse_ir(out)
    assert [n.op.name for n in g.nodes] == ["input", "relu", "add"]
    assert "relu(%x)" in out and "mul" not in out


def test_print_after_all_and_stats_go_to_stderr(capsys, redundant):
    code, out, err = lmc(
        capsys,
        "ir",
        str(redundant),
        "--passes",
        "eliminate_common_subexpressions,eliminate_dead_nodes",
        "--print-after-all",
        "--stats",
    )
    assert code == 0
    assert "// ----- IR after eliminate_common_subexpressions -----" in err
    assert "// ----- IR after eliminate_dead_nodes -----" in err
    assert re.search(r"lmc: pass eliminate_dead_nodes: [0-9.]+ ms", err)
    assert out.count("graph @g") == 1 and "mul" not in out


def test_dump_dir_and_lmc_dump(capsys, redundant, tmp_path, monkeypatch):
    d = tmp_path / "dump"
    code, _, _ = lmc(
        capsys, "ir", str(redundant), "--passes", "eliminate_dead_nodes", "--dump-dir", str(d)
    )
    assert code == 0
    assert [p.name for p in d.iterdir()] == ["00-eliminate_dead_nodes.lmc"]
    env_dir = tmp_path / "env"
    monkeypatch.setenv("LMC_DUMP", str(env_dir))
    assert lmc(capsys, "ir", str(redundant), "--passes", "default")[0] == 0
    files = sorted(p.name for p in env_dir.iterdir())
    assert files[0] == "00-canonicalize.lmc" and len(files) >= 2
    assert "mul" not in (env_dir / files[-1]).read_text()


def test_unknown_pass_is_one_error_line(capsys, redundant):
    code, out, err = lmc(capsys, "ir", str(redundant), "--passes", "frobnicate")
    assert code == 1 and out == ""
    assert err.startswith("lmc: error: unknown pass 'frobnicate'")
    assert len(err.strip().splitlines()) == 1


def test_output_file_is_never_overwritten_without_force(capsys, redundant, tmp_path):
    out_file = tmp_path / "out.lmc"
    code, out, _ = lmc(capsys, "ir", str(redundant), "-o", str(out_file))
    assert code == 0 and out == "" and out_file.read_text() == REDUNDANT
    out_file.write_text("keep me")
    code, _, err = lmc(capsys, "ir", str(redundant), "-o", str(out_file))
    assert code == 1 and "exists; pass --force" in err
    assert out_file.read_text() == "keep me"
    assert lmc(capsys, "ir", str(redundant), "-o", str(out_file), "--force")[0] == 0
    assert out_file.read_text() == REDUNDANT


def test_dot_to_file_and_stdout(capsys, redundant, tmp_path):
    dot = tmp_path / "g.dot"
    code, out, _ = lmc(capsys, "ir", str(redundant), "--dot", str(dot))
    assert code == 0 and out == REDUNDANT
    text = dot.read_text()
    assert text.startswith('digraph "@g" {') and "n0 -> n1" in text
    code, out, _ = lmc(capsys, "ir", str(redundant), "--dot", "-")
    assert code == 0 and out == text
    code, _, err = lmc(capsys, "ir", str(redundant), "--dot", str(dot))
    assert code == 1 and "exists" in err


def test_dot_escapes_hostile_names():
    g = parse_ir(
        'graph @"a\\"b" {\n  %"*/ \\"x\\"\\n; \\\\" = input() {index=0} : f32[2]\n'
        '  return %"*/ \\"x\\"\\n; \\\\"\n}\n'
    )
    dot = graph_to_dot(g)
    string = r'"(?:[^"\\\n]|\\.)*"'
    lines = dot.splitlines()
    assert re.fullmatch(f"digraph {string} {{", lines[0])
    assert re.fullmatch(rf"  n0 \[label={string}\];", lines[2]), lines[2]
    assert len(lines) == 6


def test_parse_error_has_file_line_column_and_caret(capsys, tmp_path):
    bad = tmp_path / "bad.lmc"
    bad.write_text(REDUNDANT.replace("mul(%x, %x)", "mul(%x, %y)"))
    code, out, err = lmc(capsys, "ir", str(bad))
    assert code == 1 and out == ""
    first, src, caret = err.rstrip("\n").splitlines()
    assert first == f"lmc: error: {bad}:6:16: use of undefined value %y"
    assert src == "    %3 = mul(%x, %y) : f32[s0, 4]"
    assert caret.index("^") == src.index("%y")


def test_verify_error(capsys, tmp_path):
    bad = tmp_path / "bad.lmc"
    bad.write_text(REDUNDANT.replace("%0 = relu(%x) : f32[s0, 4]", "%0 = relu(%x) : f32[s0, 5]"))
    code, _, err = lmc(capsys, "ir", str(bad))
    assert code == 1
    assert err.startswith("lmc: error: @g: result 0 is declared f32[s0, 5]")


def test_missing_file(capsys, tmp_path):
    code, _, err = lmc(capsys, "ir", str(tmp_path / "nope.lmc"))
    assert code == 1
    assert err == f"lmc: error: {tmp_path / 'nope.lmc'}: No such file or directory\n"


def test_debug_shows_the_traceback(capsys, tmp_path):
    from lmc.ir.errors import ParseError

    bad = tmp_path / "bad.lmc"
    bad.write_text("graph @g {")
    with pytest.raises(ParseError):
        main(["ir", str(bad), "--debug"])
    with pytest.raises(ParseError):
        main(["--debug", "ir", str(bad)])


def test_passes_lists_contracts(capsys):
    code, out, _ = lmc(capsys, "passes")
    assert code == 0
    assert re.search(r"^canonicalize\n    requires: typed  ensures: .*canonical", out, re.M)
    assert "default pipeline: canonicalize," in out


def test_ops_lists_the_registry(capsys):
    from lmc.ir import OPS

    code, out, _ = lmc(capsys, "ops")
    assert code == 0
    listed = re.findall(r"^([a-z0-9_]+)\(", out, re.M)
    assert listed == sorted(OPS)


def test_real_process_exit_codes(tmp_path):
    """The module runs as a program: exit status 1 and one message on stderr."""
    run = [sys.executable, "-m", "lmc.cli"]
    ok = subprocess.run([*run, "ir", str(MLP)], capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout == canonical(MLP)
    bad = subprocess.run([*run, "ir", "nope.lmc"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("lmc: error: nope.lmc:")
    assert "Traceback" not in bad.stderr
