"""The one sanitizer for generated C: identifiers, comment text and string literals. Names from a
model (graph, inputs, params, IR lines) reach generated code only through these functions, so a
name like `*/ system("x"); /*` stays inert text."""

from __future__ import annotations

import html
import json
import re

_IDENT_BAD = re.compile(r"[^A-Za-z0-9_]")
C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if "
    "inline int long register restrict return short signed sizeof static struct switch typedef "
    "union unsigned void volatile while _Bool _Complex _Imaginary _Alignas _Alignof _Atomic "
    "_Generic _Noreturn _Static_assert _Thread_local".split()
)
MAX_COMMENT = 400


def c_ident(*parts: object) -> str:
    """A C identifier built from `parts` ("lmc", "k", 3 -> lmc_k_3 style, joined by '_'):
    characters outside [A-Za-z0-9_] become '_', a leading digit gets a prefix, keywords and
    reserved names (leading underscore + capital, double underscore) are prefixed."""
    text = "_".join(str(p) for p in parts if str(p) != "")
    ident = _IDENT_BAD.sub("_", text) or "_"
    if (
        ident[0].isdigit()
        or ident in C_KEYWORDS
        or ident.startswith("__")
        or (ident[0] == "_" and len(ident) > 1 and ident[1].isupper())
    ):
        ident = "lmc_" + ident
    return ident


def c_comment(text: str) -> str:
    """Text safe inside a /* ... */ comment on one line: printable ASCII only (others as
    \\uXXXX), no comment delimiters, no trigraphs, no line breaks or backslash-newlines."""
    out = []
    for ch in text:
        code = ord(ch)
        if 32 <= code < 127:
            out.append(ch)
        elif ch in "\n\r\t":
            out.append(" ")
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    s = "".join(out)
    # Break every "*/", "/*" and "??" so no comment ends or trigraph forms, even across parts.
    while "*/" in s or "/*" in s or "??" in s:
        s = s.replace("*/", "* /").replace("/*", "/ *").replace("??", "? ?")
    if s.endswith("\\"):
        s += " "
    if len(s) > MAX_COMMENT:
        s = s[: MAX_COMMENT - 3] + "..."
        s = s.replace("*/", "* /")
    return s


def c_string(text: str) -> str:
    """A C string literal (with quotes) holding the UTF-8 bytes of `text`: printable ASCII
    except '"', '\\' and '?' is kept, every other byte is a three-digit octal escape (no hex
    escapes, which would swallow following hex digits; '?' escaped against trigraphs)."""
    out = ['"']
    for b in text.encode("utf-8"):
        ch = chr(b)
        if 32 <= b < 127 and ch not in '"\\?':
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    out.append('"')
    return "".join(out)


# ---- web packages (wasm32): the same rule for JavaScript, TypeScript and HTML -----------------


def js_string(text: str) -> str:
    """A JavaScript / TypeScript string literal (with quotes): JSON with every non-ASCII
    character and '<', '>', '&' as \\uXXXX escapes, so it stays inert inside HTML too."""
    out = json.dumps(text, ensure_ascii=True)
    return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def markup_comment(text: str) -> str:
    """Text safe inside an HTML comment and a `//` or `/* */` comment on one line: c_comment's
    text without '--', '<' or '>'."""
    s = c_comment(text).replace("<", "(").replace(">", ")")
    while "--" in s:
        s = s.replace("--", "- -")
    return s.rstrip("-")


def html_text(text: str) -> str:
    """Text for HTML element content or a quoted attribute (all markup characters escaped)."""
    return html.escape(text, quote=True)
