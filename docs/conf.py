"""Sphinx configuration of the skmtl documentation.

Build (from the repository root; warnings are errors, no network needed)::

    .venv/bin/python -m sphinx -E -W --keep-going -b html docs docs/_build/html

Every ``.. executed-code::`` block and every ``.. plot::`` figure runs while
the pages are built, so an example that raises fails the build.
"""

import os
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # the checkout's skmtl, even when not installed

# Executed examples train small models: one thread is as fast, and it keeps the
# build from fighting over the cores of a shared machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch

torch.set_num_threads(1)

from sklearn.exceptions import ConvergenceWarning

import skmtl

# The executed examples train for a few epochs on purpose.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

project = "skmtl"
author = "the skmtl developers"
copyright = "the skmtl developers"
version = release = skmtl.__version__
language = "en"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "skmtl_docs",  # docs/_ext/skmtl_docs.py: executed-code and markdown-file directives
]

exclude_patterns = ["_build", "_diagrams", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# --- API reference: written by hand in api.rst, no generated stub files.
autosummary_generate = False
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # no torch.nn.Module boilerplate on forward()
autodoc_typehints = "none"  # numpydoc's Parameters sections already give the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- Figures drawn at build time by ``.. plot::``.
plot_formats = [("png", 100)]
plot_html_show_formats = False
plot_html_show_source_link = False
plot_include_source = False
plot_rcparams = {"figure.autolayout": True, "savefig.bbox": "tight"}

# --- HTML: a theme that ships all its assets (no web fonts, no CDN).
html_theme = "furo"
html_title = f"skmtl {release}"
html_static_path = ["_static"]
html_css_files = ["skmtl.css"]  # the "Out:" blocks of executed examples
html_show_sourcelink = False
