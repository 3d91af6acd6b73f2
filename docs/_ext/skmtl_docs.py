"""Two small Sphinx directives for the skmtl documentation.

``.. executed-code::``
    Runs its Python content while the page is read and shows the code followed
    by what it printed, in a block captioned "Out:" (class ``executed-output``,
    styled by ``_static/skmtl.css``). A warning the code does not catch is
    shown in that block, where it was raised, as ``Category: message``: the
    page shows what running the code shows, and nothing reaches the build's
    log. All blocks of one page share one namespace, run in order, so a page
    reads like a script. An exception stops the build with the traceback (with
    or without ``-W``): a broken example cannot be published. Options:
    ``:hide-code:`` shows only the output.

Fitted-attribute names in shapes
    A docstring line such as ``task_loss_curves_ : ndarray of shape (n_iter_,
    n_outputs_)`` is valid numpydoc, but reST reads ``n_iter_`` as a link to a
    target named ``n_iter``. Before numpydoc parses a docstring, names ending in
    ``_`` inside ``shape (...)`` are escaped so they print as written.

``Shapes`` sections
    numpydoc knows no ``Shapes`` section and would drop it (the PyTorch
    blocks use one, as rtdl does). Such a section is moved into ``Notes``,
    starting with "Shapes:".

``.. markdown-file:: path``
    Shows a Markdown report written by a script (the benchmark results) without
    copying its numbers into the docs by hand: ``# headings`` become rubrics,
    pipe tables become tables and other lines become paragraphs (inline
    ``code`` is kept). Only this small subset of Markdown is understood.
    Options: ``:tables-only:`` skips everything but the tables.
"""

from __future__ import annotations

import contextlib
import io
import re
import traceback
import warnings
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

_NAMESPACE_KEY = "skmtl_executed_code_namespace"


class ExecutedCode(SphinxDirective):
    """Run the content as Python and show code and printed output."""

    has_content = True
    option_spec = {"hide-code": directives.flag}

    def run(self) -> list[nodes.Node]:
        code = "\n".join(self.content)
        # temp_data lives while one document is read: one namespace per page.
        namespace = self.env.temp_data.setdefault(_NAMESPACE_KEY, {"__name__": "__docs__"})
        where = f"{self.env.docname}.rst, line {self.lineno}"
        output = io.StringIO()

        def show_warning(message, category, filename, lineno, file=None, line=None):
            output.write(f"{category.__name__}: {message}\n")

        try:
            compiled = compile(code, f"<executed-code in {where}>", "exec")
            with contextlib.redirect_stdout(output), warnings.catch_warnings():
                warnings.showwarning = show_warning  # restored when the block ends
                exec(compiled, namespace)
        except Exception as exc:
            raise ExtensionError(
                f"The executed-code block at {where} raised:\n{traceback.format_exc()}"
            ) from exc
        result = []
        if "hide-code" not in self.options:
            source = nodes.literal_block(code, code, language="python")
            result.append(source)
        printed = output.getvalue().rstrip("\n")
        if printed:
            result.append(output_block(printed))
        return result


def output_block(text: str) -> nodes.container:
    """A literal block of printed output under an "Out:" caption.

    The caption is text on the page (read by screen readers, kept by copy and
    paste), as Sphinx renders a ``code-block``'s ``:caption:``.
    """
    block = nodes.literal_block(text, text, language="text")
    block["classes"].append("executed-output")
    wrapper = nodes.container(
        "", literal_block=True, classes=["literal-block-wrapper", "executed-output-wrapper"]
    )
    wrapper += nodes.caption("Out:", "Out:")
    wrapper += block
    return wrapper


_TABLE_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _rst_inline(text: str) -> str:
    """Markdown inline code (single backticks) to reST literals (double)."""
    return re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", text)


def markdown_to_rst(text: str, *, tables_only: bool = False) -> list[str]:
    """Translate the Markdown subset described in the module docstring to reST lines.

    Parameters
    ----------
    text : str
        Markdown text.
    tables_only : bool, default=False
        Keep only the pipe tables.

    Returns
    -------
    lines : list of str
        reST source.
    """
    out: list[str] = []
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    for block in filter(None, blocks):
        if block[0].lstrip().startswith("|") and len(block) >= 2 and _TABLE_SEPARATOR.match(
            block[1]
        ):
            header, rows = _cells(block[0]), [_cells(line) for line in block[2:]]
            out += [".. list-table::", "   :header-rows: 1", ""]
            for row in [header, *rows]:
                out.append(f"   * - {_rst_inline(row[0]) or ' '}")
                out += [f"     - {_rst_inline(cell) or ' '}" for cell in row[1:]]
            out.append("")
        elif tables_only:
            continue
        elif block[0].startswith("#"):
            out += [f".. rubric:: {_rst_inline(block[0].lstrip('#').strip())}", ""]
            out += [_rst_inline(line) for line in block[1:]] + [""]
        else:
            out += [_rst_inline(line) for line in block] + [""]
    return out


class MarkdownFile(SphinxDirective):
    """Include a Markdown report (headings, paragraphs, pipe tables)."""

    required_arguments = 1
    option_spec = {"tables-only": directives.flag}

    def run(self) -> list[nodes.Node]:
        relative, absolute = self.env.relfn2path(self.arguments[0])
        path = Path(absolute)
        if not path.is_file():
            raise self.error(f"markdown-file: {relative} does not exist.")
        self.env.note_dependency(relative)
        lines = markdown_to_rst(path.read_text(), tables_only="tables-only" in self.options)
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=str(path)), self.content_offset, container)
        return container.children


_SHAPE = re.compile(r"shape \(([^)]*)\)")
_TRAILING_UNDERSCORE = re.compile(r"\b([A-Za-z]\w*)_(?=\W|$)")


def _escape_shape_names(match: re.Match) -> str:
    return "shape (" + _TRAILING_UNDERSCORE.sub(r"\1\\_", match.group(1)) + ")"


def escape_attribute_names_in_shapes(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring`` handler: escape ``n_iter_`` in ``shape (...)``."""
    for i, line in enumerate(lines):
        if "shape (" in line and "_" in line:
            lines[i] = _SHAPE.sub(_escape_shape_names, line)


def _section_starts(lines: list[str]) -> list[int]:
    """Indices of numpydoc section headers (a title line underlined with dashes)."""
    return [
        i for i in range(len(lines) - 1)
        if lines[i].strip() and re.fullmatch(r"-{3,}", lines[i + 1].strip())
        and len(lines[i + 1].strip()) == len(lines[i].strip())
    ]


def move_shapes_into_notes(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring`` handler: turn a ``Shapes`` section into notes."""
    starts = _section_starts(lines)
    shapes = [i for i in starts if lines[i].strip() == "Shapes"]
    if not shapes:
        return
    begin = shapes[0]
    end = next((i for i in starts if i > begin), len(lines))
    body = [line for line in lines[begin + 2 : end]]
    while body and not body[-1].strip():
        body.pop()
    del lines[begin:end]
    if not body:
        return
    body[0] = "Shapes: " + body[0].lstrip()
    starts = _section_starts(lines)
    notes = next((i for i in starts if lines[i].strip() == "Notes"), None)
    if notes is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", "Notes", "-----", *body, ""]
    else:
        after = next((i for i in starts if i > notes), len(lines))
        while after > notes + 2 and not lines[after - 1].strip():
            after -= 1
        lines[after:after] = ["", *body, ""]


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")  # defines autodoc-process-docstring
    app.connect("autodoc-process-docstring", move_shapes_into_notes, priority=400)
    # Before numpydoc (priority 500) turns the docstring into reST.
    app.connect("autodoc-process-docstring", escape_attribute_names_in_shapes, priority=400)
    app.add_directive("executed-code", ExecutedCode)
    app.add_directive("markdown-file", MarkdownFile)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
