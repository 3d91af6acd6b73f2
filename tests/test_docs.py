"""The documentation builds offline with warnings as errors, and its examples run."""

import doctest
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # skipped by the fast tier, pytest -m "not slow"

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

DOCS_EXTRA_MISSING = "the docs extra is not installed (pip install -e '.[docs]')"


def _require_docs_extra():
    for name in ("sphinx", "numpydoc", "furo", "matplotlib"):
        pytest.importorskip(name, reason=DOCS_EXTRA_MISSING)


def _sphinx_build(source, out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(out / "doctrees"), *extra, str(source), str(out / "html")],
        capture_output=True, text=True, env=env, timeout=600,
    )


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    _require_docs_extra()
    out = tmp_path_factory.mktemp("docs")
    result = _sphinx_build(DOCS, out)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stderr[-5000:]}"
    return out / "html"


def test_site_builds_with_every_page(built_site):
    for page in ("index", "install", "user_guide", "examples", "results", "api", "about",
                 "distributed", "data_parallel", "mixed_tasks"):
        assert (built_site / f"{page}.html").is_file(), page


def test_executed_examples_show_their_output(built_site):
    guide = (built_site / "user_guide.html").read_text()
    # printed by executed blocks: the integer-cv error and sklearn's scorer error on NaN
    assert "Input y contains NaN" in guide
    assert "Input y_true contains NaN" in guide
    assert "best:" in guide and "architecture" in guide
    assert "executed-output" in guide
    # Output blocks are captioned as output; no warning leaks into them from sklearn's NaN cast.
    assert guide.count('<span class="caption-text">Out:</span>') >= 10
    assert "invalid value encountered in cast" not in guide


def test_figures_and_result_tables_are_on_the_pages(built_site):
    results = (built_site / "results.html").read_text()
    assert "census_income.png" in results
    assert (built_site / "_images" / "census_income.png").is_file()
    assert results.count("<table") >= 2  # census table, synthetic tables
    for architecture in ("shared_bottom", "moe", "mmoe"):
        assert architecture in results
    plots = list((built_site / "_images").glob("*.png"))
    assert len(plots) >= 4  # census figure, architecture diagram, two example plots
    # Every figure says what it shows; matplotlib's plot directive would use the file name.
    images = [tag for page in built_site.glob("*.html")
              for tag in re.findall(r"<img [^>]*>", page.read_text()) if "_images/" in tag]
    assert len(images) >= 4
    for tag in images:
        alt = re.search(r'alt="([^"]*)"', tag).group(1)
        assert len(alt) > 40 and not alt.endswith(".png"), tag


def test_api_reference_documents_the_public_objects(built_site):
    api = (built_site / "api.html").read_text()
    for name in ("skmtl.MultiTaskClassifier", "skmtl.save_model", "skmtl.metrics.per_task_scorers",
                 "skmtl.datasets.make_multitask_classification",
                 "skmtl.plotting.plot_expert_usage",
                 "skmtl.nn.architectures.MixtureOfExperts", "skmtl.nn.blocks.FeatureEmbedding"):
        assert f'id="{name}"' in api, name
    # numpydoc rendered the sections
    assert "gate_temperature" in api and "Attributes" in api


REMOTE_ASSET = re.compile(
    r"""<(?:script|img|iframe)[^>]*\ssrc=["']https?://"""
    r"""|<link[^>]*\shref=["']https?://[^"']*["'][^>]*>"""
    r"""|url\(\s*["']?https?://""",
    re.IGNORECASE,
)


def test_no_page_loads_a_remote_asset(built_site):
    offenders = []
    for path in list(built_site.rglob("*.html")) + list(built_site.rglob("*.css")):
        for match in REMOTE_ASSET.finditer(path.read_text(errors="replace")):
            tag = match.group(0)
            if tag.lower().startswith("<link") and "stylesheet" not in tag.lower() \
                    and "preload" not in tag.lower():
                continue  # plain <link rel="..."> metadata, nothing is fetched
            offenders.append((path.name, tag))
    assert not offenders


def _build_one_page(tmp_path, index_rst):
    """Build a site of one page with the skmtl_docs extension; the build's result."""
    _require_docs_extra()
    source = tmp_path / "src"
    source.mkdir()
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(DOCS / '_ext')!r})\n"
        "extensions = ['skmtl_docs']\n"
    )
    (source / "index.rst").write_text(index_rst)
    return _sphinx_build(source, tmp_path)


def test_a_failing_example_fails_the_build(tmp_path):
    result = _build_one_page(
        tmp_path,
        "Broken\n======\n\n.. executed-code::\n\n   print('before')\n"
        "   raise RuntimeError('this example is broken')\n",
    )
    assert result.returncode != 0
    assert "this example is broken" in result.stderr


def test_an_example_warning_is_shown_in_its_output_not_in_the_build_log(tmp_path):
    result = _build_one_page(
        tmp_path,
        "Warns\n=====\n\n.. executed-code::\n\n   import warnings\n   print('before')\n"
        "   warnings.warn('mind the gap', UserWarning)\n   print('after')\n",
    )
    assert result.returncode == 0, result.stderr
    assert "mind the gap" not in result.stderr
    page = (tmp_path / "html" / "index.html").read_text()
    assert '<span class="caption-text">Out:</span>' in page
    shown = re.sub(r"<[^>]+>", "", page.split("caption-text\">Out:", 1)[1])
    assert shown.index("before") < shown.index("UserWarning: mind the gap") < shown.index("after")


def test_markdown_tables_become_rst_tables():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        skmtl_docs = importlib.import_module("skmtl_docs")
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    text = "# Title\n\nSome `code` here.\n\n| a | b |\n|---|---:|\n| 1 | `x` |\n"
    lines = skmtl_docs.markdown_to_rst(text)
    assert ".. rubric:: Title" in lines
    assert "Some ``code`` here." in lines
    assert lines[lines.index(".. list-table::") :][3:7] == [
        "   * - a", "     - b", "   * - 1", "     - ``x``"
    ]
    only = skmtl_docs.markdown_to_rst(text, tables_only=True)
    assert only[0] == ".. list-table::" and "Some ``code`` here." not in only


@pytest.mark.parametrize(
    "module_name",
    ["skmtl._classifier", "skmtl._regressor", "skmtl._persistence", "skmtl.metrics", "skmtl.datasets._census",
     "skmtl.datasets._synthetic", "skmtl.datasets._ad_funnel", "skmtl.plotting",
     "skmtl.nn.blocks", "skmtl.nn.architectures", "skmtl.model_selection"],
)
def test_docstring_examples_run(module_name):
    """The ``Examples`` sections of the API reference are correct doctests."""
    if module_name == "skmtl.plotting":
        pytest.importorskip("matplotlib")
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module_name):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0


def test_shapes_sections_are_kept_as_notes():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        skmtl_docs = importlib.import_module("skmtl_docs")
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    lines = [
        "Summary.", "", "Parameters", "----------", "x : int", "    X.", "",
        "Shapes", "------", "(B,) -> (B, 2).",
    ]
    skmtl_docs.move_shapes_into_notes(None, "class", "name", None, {}, lines)
    assert "Shapes" not in lines and lines[-3:] == ["-----", "Shapes: (B,) -> (B, 2).", ""]
    assert lines[lines.index("Notes") - 1] == ""
