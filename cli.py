"""The `lmc` command: read, transform and print text IR; list passes and ops; build, run and
benchmark artifacts and list targets (those commands live in cli_build.py and cli_run.py).

Every error lmc raises on purpose (LmcError), a missing file (OSError) or a parse error ends
in one `lmc: error: ...` message and exit status 1; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from . import __version__
from .ir import Graph, LmcError, parse_ir, print_graph, verify
from .ir.errors import ParseError
from .ir.printer import format_node, value_names


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lmc` console script; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # `lmc ops | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ParseError as e:
        if args.debug:
            raise
        where = f"{args.file}:" if getattr(args, "file", None) else ""
        _error(f"{where}{e}")
    except (LmcError, OSError) as e:
        if args.debug:
            raise
        _error(_describe(e))
    return 1


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the Python traceback of an error",
    )
    # The subcommands' --debug (default SUPPRESS) must not reset the top-level one.
    p = argparse.ArgumentParser(prog="lmc", description="lmc: an ahead-of-time model compiler.")
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    p.add_argument("--version", action="version", version=f"lmc {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    ir = sub.add_parser(
        "ir",
        parents=[common],
        help="parse, verify, transform and print IR",
        description="Read a .lmc file, verify it, run passes, print the IR.",
    )
    ir.add_argument(
        "file", help="a .lmc text IR file ('-' reads standard input), or a .onnx/.pt2 model"
    )
    _add_dynamic_arg(ir)
    ir.add_argument(
        "--passes",
        metavar="SPEC",
        help="comma-separated pass names; 'default' is the default pipeline",
    )
    ir.add_argument(
        "--print-after-all",
        action="store_true",
        help="print the IR after every pass (to standard error)",
    )
    ir.add_argument(
        "--dump-dir",
        metavar="DIR",
        type=Path,
        help="write the IR after every pass into DIR (like LMC_DUMP=DIR)",
    )
    ir.add_argument(
        "--stats", action="store_true", help="print pass timings and statistics to standard error"
    )
    ir.add_argument("--dot", metavar="OUT", help="write a Graphviz DOT graph ('-': stdout)")
    ir.add_argument("-o", "--output", metavar="OUT", help="write the IR here, not to stdout")
    ir.add_argument("--force", action="store_true", help="overwrite existing output files")
    ir.set_defaults(func=cmd_ir)

    imp = sub.add_parser(
        "import",
        parents=[common],
        help="import a model (.onnx, .pt2, .lmc) and print a capture report",
        description="Import a model and report the op histogram, symbols and bounds, params "
        "size and anything unsupported (all unsupported ops at once).",
    )
    imp.add_argument("model", help="a .onnx, .pt2 or .lmc file")
    _add_dynamic_arg(imp)
    imp.add_argument("--ir", action="store_true", help="also print the imported IR")
    imp.add_argument("-o", "--output", metavar="OUT.lmc", help="write the imported IR here")
    imp.add_argument("--force", action="store_true", help="overwrite an existing output file")
    imp.set_defaults(func=cmd_import)

    ps = sub.add_parser("passes", parents=[common], help="list registered passes and contracts")
    ps.set_defaults(func=cmd_passes)
    ops = sub.add_parser("ops", parents=[common], help="list registered ops and attributes")
    ops.set_defaults(func=cmd_ops)

    from . import cli_build, cli_run

    cli_build.add_commands(sub, common)
    cli_run.add_commands(sub, common)
    return p


# -- commands ------------------------------------------------------------------------------
def cmd_ir(args: argparse.Namespace) -> int:
    for out in (args.output, args.dot):
        if out and out != "-" and Path(out).exists() and not args.force:
            raise LmcError(f"{out} exists; pass --force to overwrite it")
    if args.output == "-" and args.dot == "-":
        raise LmcError("-o - and --dot - both write to standard output; pick one")
    g = _load_graph(args.file, args.dynamic)
    if args.passes:
        from .passes import PassContext, Pipeline

        pipeline = Pipeline.from_spec(args.passes)
        ctx = PassContext(
            print_after_all=args.print_after_all, printer=_stderr_print, dump_dir=args.dump_dir
        )
        g = pipeline.run(g, ctx)
        if args.stats:
            _print_stats(pipeline.passes, ctx.timings, ctx.stats, sys.stderr)
    elif args.print_after_all or args.stats or args.dump_dir:
        print("lmc: note: no --passes given, nothing to print after", file=sys.stderr)
    if args.dot:
        _write(args.dot, graph_to_dot(g))
    if args.dot != "-" or args.output:
        _write(args.output or "-", print_graph(g))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .frontend import import_model

    if args.output and Path(args.output).exists() and not args.force:
        raise LmcError(f"{args.output} exists; pass --force to overwrite it")
    g, report = import_model(args.model, dynamic_shapes=parse_dynamic(args.dynamic))
    print(report)
    if args.ir:
        print(print_graph(g), end="")
    if args.output:
        _write(args.output, print_graph(g))
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    from .passes.manager import DEFAULT_PIPELINE, PASSES, _load_builtin_passes

    _load_builtin_passes()
    for name in sorted(PASSES):
        p = PASSES[name]
        tol = (
            "exact"
            if p.tolerance is None
            else f"tolerance rtol={p.tolerance[0]:g} atol={p.tolerance[1]:g}"
        )
        print(f"{name}")
        print(
            f"    requires: {_props(p.requires)}  ensures: {_props(p.ensures)}  "
            f"breaks: {_props(p.breaks)}  {tol}"
        )
        print(
            textwrap.fill(
                _first_paragraph(p.doc), 96, initial_indent="    ", subsequent_indent="    "
            )
        )
    print(f"default pipeline: {','.join(DEFAULT_PIPELINE)}")
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    from .ir.op import OPS
    from .ir.printer import format_attr

    for name in sorted(OPS):
        cls = OPS[name]
        lo, hi = cls.arity()
        arity = str(lo) if lo == hi else f"{lo}..{'n' if hi is None else hi}"
        try:
            attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in cls().attrs().items())
        except (TypeError, ValueError, LmcError):
            attrs = ", ".join(cls.attr_types())
        noun = "operand" if arity == "1" else "operands"
        print(f"{name}({arity} {noun}) {{{attrs}}}")
        print(
            textwrap.fill(
                _first_paragraph(cls.__doc__ or ""),
                96,
                initial_indent="    ",
                subsequent_indent="    ",
            )
        )
    return 0


# -- helpers -------------------------------------------------------------------------------
def _add_dynamic_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dynamic",
        metavar="INPUT:AXIS=NAME:LO:HI",
        action="append",
        default=[],
        help="make an input axis a symbol with bounds, e.g. input_ids:1=seq:1:512 (repeatable)",
    )


def parse_dynamic(specs: Sequence[str]) -> dict[str, dict[int, tuple[str, int, int]]] | None:
    """`["x:0=batch:1:64"]` -> {"x": {0: ("batch", 1, 64)}} (the frontends' dynamic form)."""
    out: dict[str, dict[int, tuple[str, int, int]]] = {}
    for spec in specs:
        try:
            lhs, rhs = spec.rsplit("=", 1)
            name, axis = lhs.rsplit(":", 1)
            sym_name, lo, hi = rhs.split(":")
            out.setdefault(name, {})[int(axis)] = (sym_name, int(lo), int(hi))
        except ValueError:
            raise LmcError(
                f"--dynamic {spec!r}: expected INPUT:AXIS=NAME:LO:HI, e.g. x:0=batch:1:64"
            ) from None
    return out or None


def _load_graph(file: str, dynamic: Sequence[str]) -> Graph:
    """A verified graph from a .lmc file (or stdin) or an importable model file."""
    if file == "-" or file.endswith(".lmc"):
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        g = parse_ir(text)
        verify(g)
        return g
    from .frontend import import_model

    return import_model(file, dynamic_shapes=parse_dynamic(dynamic))[0]


def graph_to_dot(g: Graph) -> str:
    """A Graphviz DOT rendering: one box per node labelled with its IR line, edges by value."""
    names = value_names(g)
    pos = {id(n): i for i, n in enumerate(g.nodes)}
    lines = [f"digraph {_dot_str('@' + g.name)} {{", '  node [shape=box, fontname="monospace"];']
    for i, n in enumerate(g.nodes):
        lines.append(f"  n{i} [label={_dot_str(format_node(n, names))}];")
    for i, n in enumerate(g.nodes):
        for k, v in enumerate(n.inputs):
            lines.append(f'  n{pos[id(v.node)]} -> n{i} [label="{k}"];')
    if g.outputs:
        lines.append('  return [shape=oval, label="return"];')
        for k, v in enumerate(g.outputs):
            lines.append(f'  n{pos[id(v.node)]} -> return [label="{k}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_str(s: str) -> str:
    """A DOT double-quoted string; backslashes, quotes and line breaks are escaped."""
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s.replace("\r", "\\r").replace("\n", "\\n") + '"'


def _write(dest: str, text: str) -> None:
    if dest == "-":
        sys.stdout.write(text)
    else:
        Path(dest).write_text(text, encoding="utf-8")


def _stderr_print(text: str) -> None:
    print(text, file=sys.stderr)


def _props(props: frozenset) -> str:
    return ", ".join(sorted(p.value for p in props)) or "-"


def _print_stats(
    passes: Sequence, timings: dict[str, float], stats: dict[str, dict], out: TextIO
) -> None:
    seen: set[str] = set()
    for p in passes:
        if p.name in seen:
            continue
        seen.add(p.name)
        detail = ", ".join(f"{k}={v}" for k, v in sorted(stats.get(p.name, {}).items()))
        print(
            f"lmc: pass {p.name}: {timings.get(p.name, 0.0) * 1e3:.2f} ms"
            + (f" ({detail})" if detail else ""),
            file=out,
        )


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n")[0].split())


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    return str(e) or type(e).__name__


def _error(msg: str) -> None:
    print(f"lmc: error: {msg}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
