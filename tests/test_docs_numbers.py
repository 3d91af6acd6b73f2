"""Numbers that the README and the docs quote agree with the generated reports they cite.

The benchmark scripts and ``examples/census_income.py`` write their results to
Markdown files (``benchmarks/results/*.md``, ``docs/_static/census_income.md``),
which the docs show with ``.. markdown-file::``. The README cannot include a
file, and prose on both sides repeats some of their numbers; this test keeps
those copies honest. A marker names the file a block's numbers come from:

- Markdown: ``<!-- numbers: path[, path...] -->`` on the line before the block;
- reST: ``.. numbers: path[, path...]`` (a comment), a blank line, the block;
- ``numbers: none (why)`` declares that no script writes the block's numbers
  (one-off measurements); nothing in it is checked, the reason is for readers.

Paths are relative to the file holding the marker, like ``.. markdown-file::``
paths. The block is the run of non-blank lines after the marker. Then:

- a copied table (every line starts with ``|``) must be a table of the cited
  file, line for line; a copied list of conditions (``- key: value`` lines) must
  consist of lines of the cited file;
- in prose, every number with a decimal point, every ratio (``1.6x``) and
  every whole number with a unit (``32 epochs``, ``146 s``, ``654 MB``,
  ``10 %``) must be a number of the cited file, as written or rounded to the
  digits shown (``0.0194`` may be quoted as ``0.02``), unless a derived claim
  (``DERIVED`` below: a spread, a difference, a ratio) computes it from the
  file, which it must then equal.

Numbers inside inline code (```...``` / ````...````) are not read. New numbers
cannot slip past unmarked: in a section that shows or names a generated report,
a block holding such numbers must carry a marker
(:func:`test_sections_that_show_a_report_mark_their_numbers`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]
GENERATED = sorted((ROOT / "benchmarks" / "results").glob("*.md")) + [
    ROOT / "docs" / "_static" / "census_income.md"
]

_MARKER = re.compile(r"^(?:<!--\s*numbers:\s*(?P<md>.*?)\s*-->|\.\. numbers:\s*(?P<rst>.*?))\s*$")
_NUMBER = re.compile(r"(?<![\w.])(?P<value>\d{1,3}(?:,\d{3})+|\d+)(?P<fraction>\.\d+)?(?!\.?\d)")
_UNIT = re.compile(r"x\b|\s?(?:%|(?:ms|s|MB|GB|min|epochs?|seconds?|minutes?)\b)")
_INLINE_CODE = re.compile(r"``.+?``|`[^`]+`")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+]){3,}\s*$")


# --------------------------------------------------------------------------- parsing
@dataclass
class Block:
    """A run of non-blank lines of a document, with the marker before it (if any)."""

    path: Path
    line: int  # 1-based number of the block's first line
    lines: list[str]
    marker: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def sources(self) -> list[Path]:
        """The files the marker cites (none for ``numbers: none (...)``)."""
        if self.marker is None or self.marker.startswith("none"):
            return []
        return [(self.path.parent / part.strip()).resolve() for part in self.marker.split(",")]


def blocks(path: Path) -> list[Block]:
    """The prose blocks of a document: no code, no directives, no directive bodies.

    A block that starts indented (code, a directive's content) or with ``..``
    is not prose; Markdown's fenced code is skipped. A marker applies to the
    next block, over blank lines.
    """
    found: list[Block] = []
    marker = None
    current: Block | None = None
    fenced = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith("```"):
            fenced = not fenced
            current = None
            continue
        if fenced:
            continue
        match = _MARKER.match(line)
        if match:
            marker = match.group("md") if match.group("md") is not None else match.group("rst")
            current = None
            continue
        if not line.strip():
            current = None
            continue
        if current is not None:
            current.lines.append(line)
            continue
        if line[0].isspace() or line.startswith(".."):
            continue  # inside a directive or an indented block, or a directive
        current = Block(path, number, [line], marker)
        marker = None
        found.append(current)
    return found


def sections(path: Path) -> list[tuple[str, list[Block]]]:
    """Each section's text (markers left out) and its prose blocks.

    Sections start at README's ``#`` headings and at reST's underlined titles.
    """
    lines = path.read_text().splitlines()
    if path.suffix == ".md":
        fences = [i for i, line in enumerate(lines) if line.startswith("```")]
        in_code = {i for a, b in zip(fences[::2], fences[1::2]) for i in range(a, b)}
        starts = [i for i, line in enumerate(lines) if line.startswith("#") and i not in in_code]
    else:
        starts = [
            i for i in range(len(lines) - 1)
            if lines[i].strip() and _RST_UNDERLINE.match(lines[i + 1])
            and len(lines[i + 1].rstrip()) >= len(lines[i].rstrip())
        ]
    bounds = [0, *starts, len(lines)]
    every = blocks(path)
    result = []
    for begin, end in zip(bounds, bounds[1:]):
        inside = [b for b in every if begin < b.line <= end]
        shown = [line for line in lines[begin:end] if not _MARKER.match(line)]
        result.append(("\n".join(shown), inside))
    return result


def quoted_numbers(text: str) -> list[str]:
    """The numbers that must be sourced: decimals, ratios and whole numbers with a unit."""
    text = _INLINE_CODE.sub(" ", text)
    found = []
    for match in _NUMBER.finditer(text):
        unit = _UNIT.match(text, match.end())
        if match.group("fraction") or unit:
            found.append(match.group("value") + (match.group("fraction") or ""))
    return found


def source_numbers(text: str) -> list[Decimal]:
    return [Decimal((m.group("value") + (m.group("fraction") or "")).replace(",", ""))
            for m in _NUMBER.finditer(text)]


def is_sourced(quoted: str, numbers: list[Decimal]) -> bool:
    """``quoted`` is one of ``numbers`` as written or rounded (half up) to its digits."""
    value = Decimal(quoted.replace(",", ""))
    step = Decimal(1).scaleb(value.as_tuple().exponent)
    return any(
        number == value or number.quantize(step, rounding=ROUND_HALF_UP) == value
        for number in numbers
    )


def markdown_tables(text: str) -> list[list[str]]:
    """The pipe tables of a Markdown text, each as its lines."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line.rstrip())
        elif current:
            tables.append(current)
            current = []
    return tables


def table_rows(text: str, header_starts: str) -> list[dict[str, str]]:
    """The rows of the table whose header line starts with ``header_starts``, by column name."""
    for table in markdown_tables(text):
        if table[0].startswith(header_starts):
            names = [cell.strip() for cell in table[0].strip("|").split("|")]
            return [dict(zip(names, (c.strip() for c in row.strip("|").split("|"))))
                    for row in table[2:]]
    raise AssertionError(f"no table whose header starts with {header_starts!r}")


# --------------------------------------------------------------------------- derived claims
def _round_up(value: float, digits: int) -> str:
    return f"{math.ceil(round(value * 10**digits, 9)) / 10**digits:.{digits}f}"


def census_auc_spread(text: str) -> tuple[str]:
    """Largest gap between architectures on any task's AUC, rounded up to 0.001."""
    rows = table_rows(text, "| architecture | auc_")
    columns = [name for name in rows[0] if name.startswith("auc_")]
    spread = max(max(float(r[c]) for r in rows) - min(float(r[c]) for r in rows) for c in columns)
    return (_round_up(spread, 3),)


def dask_one_worker_overhead(text: str) -> tuple[str]:
    """Median search time of the one-worker Dask cluster minus the sequential one's."""
    rows = {(r["run"], r["workers"]): r for r in table_rows(text, "| run | workers |")}
    seconds = "search wall s (median)"
    return (f"{float(rows['dask', '1'][seconds]) - float(rows['sequential', '1'][seconds]):.1f}",)


def one_row_dataframe_cost(text: str) -> tuple[str]:
    """One-row predict_proba from a DataFrame minus from an array, in ms."""
    rows = {r["input"]: r for r in table_rows(text, "| input | skmtl s |")}
    return (f"{float(rows['DataFrame']['one row, ms']) - float(rows['array']['one row, ms']):.1f}",)


def one_thread_slowdown(text: str) -> tuple[str, str]:
    """How many times slower one thread is than torch's threads, quiet, over the two workloads."""
    rows = table_rows(text, "| workload | condition |")
    ratios = sorted(
        1 / float(r["vs torch's default quiet"].rstrip("x")) for r in rows
        if r["condition"] == "quiet" and r["configuration"].startswith("one thread")
    )
    return f"{ratios[0]:.1f}", f"{ratios[-1]:.1f}"


@dataclass
class Derived:
    """A number in ``document`` that ``compute`` derives from ``source`` (paths from the root)."""

    document: str
    pattern: str  # one match in the document; its groups are the quoted numbers
    source: str
    compute: Callable[[str], tuple[str, ...]]


DERIVED = [
    Derived("README.md", r"within (\d\.\d+) AUC of each other", "docs/_static/census_income.md",
            census_auc_spread),
    Derived("docs/results.rst", r"within (\d\.\d+) test AUC", "docs/_static/census_income.md",
            census_auc_spread),
    Derived("docs/distributed.rst", r"about (\d+\.\d) s slower than the sequential",
            "benchmarks/results/dask_search.md", dask_one_worker_overhead),
    Derived("docs/performance.rst", r"cost about (\d\.\d) ms",
            "benchmarks/results/floor_io_latest.md", one_row_dataframe_cost),
    Derived("docs/performance.rst", r"(\d\.\d)-(\d\.\d)x slower than on torch's",
            "benchmarks/results/extras_latest.md", one_thread_slowdown),
]


def _derived_spans(path: Path) -> list[tuple[Derived, re.Match]]:
    text = path.read_text()
    found = []
    for claim in DERIVED:
        if ROOT / claim.document == path:
            matches = list(re.finditer(claim.pattern, text))
            assert len(matches) == 1, (
                f"{claim.document}: the derived claim {claim.pattern!r} should match once, "
                f"matched {len(matches)} times; update DERIVED in {Path(__file__).name} "
                "with the prose"
            )
            found.append((claim, matches[0]))
    return found


# --------------------------------------------------------------------------- tests
MARKED = [b for path in DOCUMENTS for b in blocks(path) if b.marker is not None]


def test_markers_are_found():
    # README: census intro, table, conditions and claim; seeds (the six architectures);
    # synthetic intro, table, claim; the size of the test extra.
    assert sum(b.path.name == "README.md" for b in MARKED) == 9
    assert {b.path.name for b in MARKED} >= {"README.md", "results.rst", "performance.rst"}


@pytest.mark.parametrize("block", MARKED, ids=lambda b: b.where)
def test_marked_numbers_come_from_the_cited_report(block):
    if block.marker.startswith("none"):
        assert re.fullmatch(r"none \(.+\)", block.marker), (
            f"{block.where}: write why no report holds these numbers: numbers: none (why)"
        )
        return
    sources = block.sources()
    for source in sources:
        assert source in GENERATED, f"{block.where}: {source} is not a generated report"
    source_text = "\n".join(source.read_text() for source in sources)
    if all(line.startswith("|") for line in block.lines):
        tables = markdown_tables(source_text)
        assert [line.rstrip() for line in block.lines] in tables, (
            f"{block.where}: this table is not, line for line, a table of "
            f"{[str(s.relative_to(ROOT)) for s in sources]}"
        )
        return
    if all(re.match(r"- [\w ]+: ", line) for line in block.lines):
        missing = [line for line in block.lines if line not in source_text.splitlines()]
        assert not missing, f"{block.where}: lines not in the cited report: {missing}"
        return
    text = block.text
    for claim, match in _derived_spans(block.path):
        start = text.find(match.group(0))
        if start >= 0:
            text = text[:start] + " " * len(match.group(0)) + text[start + len(match.group(0)):]
    numbers = source_numbers(source_text)
    unsourced = [q for q in quoted_numbers(text) if not is_sourced(q, numbers)]
    assert not unsourced, (
        f"{block.where}: {unsourced} are not numbers of "
        f"{[str(s.relative_to(ROOT)) for s in sources]} (as written or rounded)"
    )


@pytest.mark.parametrize("claim", DERIVED, ids=lambda c: f"{c.document}:{c.pattern}")
def test_derived_claims_equal_what_the_report_gives(claim):
    ((_, match),) = [(c, m) for c, m in _derived_spans(ROOT / claim.document) if c is claim]
    expected = claim.compute((ROOT / claim.source).read_text())
    assert match.groups() == expected, (
        f"{claim.document}: {match.group(0)!r} says {match.groups()}, "
        f"{claim.source} gives {expected} ({claim.compute.__doc__.strip()})"
    )


def test_sections_that_show_a_report_mark_their_numbers():
    names = [path.name for path in GENERATED]
    unmarked = []
    for path in DOCUMENTS:
        for text, inside in sections(path):
            if not any(name in text for name in names):
                continue
            unmarked += [b.where for b in inside if b.marker is None and quoted_numbers(b.text)]
    assert not unmarked, (
        "These blocks quote numbers in a section that shows a generated report, without a "
        f"'numbers:' marker (see {Path(__file__).name}): {unmarked}"
    )


def test_the_checks_catch_a_changed_number():
    """The parsing and the rounding rule on a small example."""
    assert quoted_numbers("AUC 0.9410 in 32 epochs, 15.1 s, 2-core, 1.6x, `0.5`, v2.13.0") == [
        "0.9410", "32", "15.1", "1.6"
    ]
    numbers = source_numbers("| moe | 0.9413 | 0.0194 | 1,234 |")
    assert is_sourced("0.9413", numbers) and is_sourced("0.941", numbers)
    assert is_sourced("0.02", numbers) and is_sourced("1,234", numbers)
    assert not is_sourced("0.9414", numbers) and not is_sourced("0.94", numbers[1:])
    assert census_auc_spread(
        "| architecture | auc_a | auc_b |\n|---|---|---|\n| x | 0.9410 | 0.99 |\n"
        "| y | 0.9424 | 0.99 |\n"
    ) == ("0.002",)
