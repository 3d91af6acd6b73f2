"""Shape of the skmtl package at a commit: file size, long functions, private reaches, call depth.

Before/after figures for a refactor of the package's core::

    python benchmarks/code_metrics.py                      # the working tree
    python benchmarks/code_metrics.py --commit f57ea1c     # a commit, read with git show
    python benchmarks/code_metrics.py --commit HEAD --json

With ``--commit`` the files are read with ``git ls-tree`` / ``git show REV:path``
(nothing is checked out); without it from the working tree (``--root``, by
default the repository holding this script). Only ``skmtl/**/*.py`` is read;
tests, benchmarks and examples are not measured. Standard library only.

Measures
--------
1. Lines of ``skmtl/_classifier.py``: total lines, and code lines. A code
   line holds at least one token that is not a comment and not a docstring
   (a string literal that is the first statement of a module, class or
   function); blank and comment-only lines are not code. A line of a
   multi-line expression or string literal (other than a docstring) is code.
2. Functions, longest first (by code lines, then total lines). Total lines run
   from the ``def`` line to the last line of the body (decorators excluded);
   code lines are counted as in 1 over that span, so every docstring in it,
   blank and comment lines are left out. A nested function (closure) is
   counted inside its enclosing function *and* listed on its own, named
   ``module.Class.function.inner``.
3. Private reaches, counted in four groups and each hit listed (file:line,
   source line) so a reader can check them:

   - ``attribute``: an attribute access ``x._name`` (one leading underscore,
     so neither dunders nor name-mangled ``__name``) where ``x`` is not
     ``self``, ``cls``, ``super()`` or ``type(self)``: the code reaches into
     another object's privates (``estimator._validate_X(...)``,
     ``self.encoder_._name(j)``, ``other._state``), or into a private name of
     a package module (``_persistence._load(...)``);
   - ``import``: ``from <package module> import _name`` (an underscore *name*
     imported across a module boundary). Importing a private *module*
     (``from . import _persistence``, ``from ._encoding import TabularEncoder``)
     is the package's internal layout and is not counted;
   - ``third-party attribute`` / ``third-party import``: the same reaches into
     another library (``sys._getframe``, ``batchnorm._NormBase``,
     ``from sklearn.base import _fit_context``): ``x`` is (an attribute chain
     starting at) a name bound by importing a module outside the package.
     These measure exposure to other libraries' internals, not the package's
     own coupling, hence their own counts.

   Not counted anywhere: the public API of named tuples that happens to start
   with an underscore (``_fields``, ``_asdict``, ``_replace``, ``_make``,
   ``_field_defaults``), and underscore names in strings or docstrings.
4. The call chain from ``MultiTaskClassifier.fit`` (in ``skmtl/_classifier.py``)
   to the optimizer step: breadth-first over the static call graph until a
   function whose own body calls ``<anything>.step(...)``; the shortest chain
   is printed as ``file:function -> file:function -> ...`` with its length
   (functions in it), the number of distinct files it visits and the number
   of times it comes back to a file it had left (A -> B -> A counts 1). A
   closure is a step of its own.

Call resolver (static, deliberately simple)
-------------------------------------------
A call ``f(...)`` in a function is followed when it resolves to a function
defined in the package:

- ``name(...)``: a function nested in this function or an enclosing one, then a
  module-level function or class of the same module, then a name imported
  from a package module (``from ._training import train``, followed through
  re-exports); calling a package class goes to its ``__init__`` if the class
  or a package base defines one;
- ``self.m(...)`` / ``cls.m(...)`` (also inside closures of a method) and
  ``super().m(...)``: ``m`` in the method's class, then its bases that are
  package classes, depth first (an approximation of the MRO);
- ``mod.f(...)`` where ``mod`` is an imported package module.

Limits: no type inference, so ``obj.m(...)`` on any other receiver
(``self.encoder_.transform``, ``state.run()``) is not followed; as a fallback,
used only when no chain exists without it, such a call is guessed to be the
method ``m`` when exactly one package class defines a method of that name, and
the edge is printed ``~>``. Functions passed as values (callbacks), calls made
through ``getattr``, decorators' wrappers, properties, operators and
dynamically built names are not followed; a local variable that shadows a
function's name is not noticed. The step is recognised by the attribute name
``step`` alone; the chain's last line shows the call so it can be checked.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import subprocess
import sys
import tokenize
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "skmtl"
CLASSIFIER_FILE = "skmtl/_classifier.py"
CHAIN_START = ("skmtl/_classifier.py", "MultiTaskClassifier.fit")
STEP_METHOD = "step"
SELF_NAMES = {"self", "cls"}
NAMEDTUPLE_API = {"_fields", "_asdict", "_replace", "_make", "_field_defaults"}
TOP = 5

_NON_CODE_TOKENS = {
    tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
    tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER,
}


# --------------------------------------------------------------------------- sources


def read_sources(root: Path, commit: str | None = None, package: str = PACKAGE) -> dict[str, str]:
    """Read the package's Python files.

    Parameters
    ----------
    root : Path
        Repository root (for ``commit``) or the directory holding ``package``.
    commit : str or None
        Git revision to read with ``git show``; None reads the files on disk.
    package : str
        Directory of the package, relative to ``root``.

    Returns
    -------
    dict of str to str
        Source text by path relative to ``root`` (``"skmtl/_training.py"``).
    """
    if commit is None:
        return {
            p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted((root / package).rglob("*.py"))
        }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
        ).stdout

    paths = git("ls-tree", "-r", "--name-only", commit, "--", package).split("\n")
    return {p: git("show", f"{commit}:{p}") for p in sorted(paths) if p.endswith(".py")}


def module_name(path: str) -> str:
    """Dotted module name of a path: ``skmtl/nn/__init__.py`` -> ``skmtl.nn``."""
    parts = path[: -len(".py")].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# --------------------------------------------------------------------------- lines


def _docstring_nodes(tree: ast.Module) -> list[ast.Constant]:
    """The string constants that are docstrings (module, classes, functions)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                found.append(body[0].value)
    return found


def code_lines(source: str, tree: ast.Module | None = None) -> set[int]:
    """Line numbers (1-based) that hold code.

    Parameters
    ----------
    source : str
        A module's source text.
    tree : ast.Module, optional
        Its parse tree, if already at hand.

    Returns
    -------
    set of int
        Lines with at least one token that is neither a comment nor part of
        a docstring.
    """
    tree = tree if tree is not None else ast.parse(source)
    docstrings = {(n.lineno, n.col_offset) for n in _docstring_nodes(tree)}
    rows: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in _NON_CODE_TOKENS:
            continue
        if tok.type == tokenize.STRING and tok.start in docstrings:
            continue
        rows.update(range(tok.start[0], tok.end[0] + 1))
    return rows


def file_lines(source: str) -> dict[str, int]:
    """Total and code lines of a module (see :func:`code_lines`)."""
    return {"total": len(source.splitlines()), "code": len(code_lines(source))}


# --------------------------------------------------------------------------- package index


@dataclass
class Function:
    """A function or method defined in the package."""

    path: str
    qualname: str  # "Class.method", "function.inner" (no "<locals>")
    node: ast.FunctionDef | ast.AsyncFunctionDef
    cls: str | None  # qualname of the class whose method this is (or encloses it)
    parent: Function | None  # enclosing function, for closures
    nested: dict[str, Function] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.path.rsplit('/', 1)[-1]}:{self.qualname}"


@dataclass
class Module:
    """One parsed module of the package and the names it binds."""

    path: str
    name: str
    source: str
    tree: ast.Module
    functions: dict[str, Function] = field(default_factory=dict)  # module level, by name
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)  # by qualname
    imported_modules: dict[str, str] = field(default_factory=dict)  # local name -> module
    imported_names: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (module, name)


class Package:
    """The parsed package: modules, functions and classes, and a name resolver.

    Parameters
    ----------
    sources : dict of str to str
        Source text by path (from :func:`read_sources`).
    package : str
        The package's top-level name.
    """

    def __init__(self, sources: dict[str, str], package: str = PACKAGE):
        self.package = package
        self.modules: dict[str, Module] = {}
        for path, source in sources.items():
            mod = Module(path, module_name(path), source, ast.parse(source, filename=path))
            self.modules[mod.name] = mod
        self.functions: list[Function] = []
        for mod in self.modules.values():
            self._index(mod)

    # indexing ---------------------------------------------------------------------------

    def is_internal(self, module: str | None) -> bool:
        """Whether a dotted module name lies inside the package."""
        if module is None:
            return False
        return module == self.package or module.startswith(self.package + ".")

    def absolute_module(self, mod: Module, node: ast.ImportFrom) -> str | None:
        """The absolute module name a ``from ... import`` statement reads from."""
        if node.level == 0:
            return node.module
        package = mod.name.split(".")
        if not mod.path.endswith("__init__.py"):
            package = package[:-1]
        base = package[: len(package) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def _index(self, mod: Module) -> None:
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    local = alias.asname or alias.name.split(".")[0]
                    mod.imported_modules[local] = alias.name if alias.asname else local
            elif isinstance(node, ast.ImportFrom):
                source = self.absolute_module(mod, node)
                for alias in node.names:
                    local = alias.asname or alias.name
                    full = f"{source}.{alias.name}"
                    if full in self.modules:  # a submodule (from . import _persistence)
                        mod.imported_modules[local] = full
                    else:
                        mod.imported_names[local] = (source, alias.name)
        self._walk_defs(mod, mod.tree.body, prefix="", cls=None, parent=None)

    def _walk_defs(self, mod, body, prefix, cls, parent) -> None:
        """Index the functions and classes defined in ``body`` (recursively)."""
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fn = Function(mod.path, prefix + node.name, node, cls, parent)
                self.functions.append(fn)
                if parent is not None:
                    parent.nested[node.name] = fn
                elif cls is None:
                    mod.functions[node.name] = fn
                self._walk_defs(mod, node.body, fn.qualname + ".", cls, fn)
            elif isinstance(node, ast.ClassDef):
                qual = prefix + node.name
                mod.classes[qual] = node
                self._walk_defs(mod, node.body, qual + ".", qual, None)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, block, []):
                        inner = child.body if isinstance(child, ast.ExceptHandler) else [child]
                        self._walk_defs(mod, inner, prefix, cls, parent)

    # resolving --------------------------------------------------------------------------

    def module_of(self, fn: Function) -> Module:
        """The module a function is defined in."""
        return self.modules[module_name(fn.path)]

    def resolve_name(self, module: str, name: str, depth: int = 0):
        """What a top-level name of a package module refers to.

        Returns
        -------
        tuple or None
            ``("function", Function)``, ``("class", (Module, qualname))``,
            ``("module", dotted_name)`` or None if it is not defined in the package.
        """
        mod = self.modules.get(module)
        if mod is None or depth > 8:
            return None
        if name in mod.functions:
            return "function", mod.functions[name]
        if name in mod.classes:
            return "class", (mod, name)
        if name in mod.imported_modules and self.is_internal(mod.imported_modules[name]):
            return "module", mod.imported_modules[name]
        if name in mod.imported_names:
            source, original = mod.imported_names[name]
            if self.is_internal(source):
                return self.resolve_name(source, original, depth + 1)
        return None

    def method(self, mod: Module, cls: str, name: str, seen=None) -> Function | None:
        """Method ``name`` of class ``cls`` or its package bases (depth first)."""
        seen = seen if seen is not None else set()
        if (mod.name, cls) in seen:
            return None
        seen.add((mod.name, cls))
        for fn in self.functions:
            if fn.path == mod.path and fn.parent is None and fn.qualname == f"{cls}.{name}":
                return fn
        for base_mod, base in self.bases(mod, cls):
            found = self.method(base_mod, base, name, seen)
            if found is not None:
                return found
        return None

    def bases(self, mod: Module, cls: str) -> list[tuple[Module, str]]:
        """The package classes among the bases of ``cls``."""
        found = []
        for base in mod.classes[cls].bases:
            if isinstance(base, ast.Name):
                target = self.resolve_name(mod.name, base.id)
            elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
                owner = self.resolve_name(mod.name, base.value.id)
                is_module = owner is not None and owner[0] == "module"
                target = self.resolve_name(owner[1], base.attr) if is_module else None
            else:
                target = None
            if target is not None and target[0] == "class":
                found.append(target[1])
        return found

    def unique_method(self, name: str) -> Function | None:
        """The method ``name`` if exactly one package class defines it."""
        hits = [
            f for f in self.functions
            if f.cls and f.parent is None and f.qualname.endswith("." + name)
        ]
        return hits[0] if len(hits) == 1 else None


# --------------------------------------------------------------------------- functions


def own_nodes(fn_node: ast.AST):
    """Nodes of a function's body, not descending into nested functions or classes."""
    stack = list(ast.iter_child_nodes(fn_node))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


def function_sizes(pkg: Package) -> list[dict]:
    """Every function's size, longest first (code lines, then total lines).

    Returns
    -------
    list of dict
        ``name`` (``module.Class.function``), ``file``, ``line``, ``total``
        and ``code`` lines.
    """
    code_by_path = {m.path: code_lines(m.source, m.tree) for m in pkg.modules.values()}
    rows = []
    for fn in pkg.functions:
        start, end = fn.node.lineno, fn.node.end_lineno
        code = sum(1 for line in code_by_path[fn.path] if start <= line <= end)
        rows.append({
            "name": f"{module_name(fn.path)}.{fn.qualname}",
            "file": fn.path,
            "line": start,
            "total": end - start + 1,
            "code": code,
        })
    return sorted(rows, key=lambda r: (-r["code"], -r["total"], r["name"]))


# --------------------------------------------------------------------------- private reaches


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_own(node: ast.expr) -> bool:
    """``self``, ``cls``, ``super()`` or ``type(self)``."""
    if isinstance(node, ast.Name):
        return node.id in SELF_NAMES
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == "super":
            return True
        return node.func.id == "type" and len(node.args) == 1 and _is_own(node.args[0])
    return False


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def private_reaches(pkg: Package) -> dict[str, list[dict]]:
    """Private names reached from outside their object or module (see the module docstring).

    Returns
    -------
    dict of str to list of dict
        Hits (``file``, ``line``, ``text``, ``name``) under ``attribute``,
        ``import``, ``third-party attribute`` and ``third-party import``.
    """
    hits: dict[str, list[dict]] = {
        "attribute": [], "import": [], "third-party attribute": [], "third-party import": []
    }
    for mod in pkg.modules.values():
        lines = mod.source.splitlines()

        def add(kind, node, name, mod=mod, lines=lines):
            hits[kind].append({
                "file": mod.path, "line": node.lineno, "name": name,
                "text": lines[node.lineno - 1].strip(),
            })

        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                if node.attr in NAMEDTUPLE_API or _is_own(node.value):
                    continue
                root = _root_name(node.value)
                bound = mod.imported_modules.get(root)
                if bound is None and root in mod.imported_names:
                    bound = mod.imported_names[root][0]
                external = bound is not None and not pkg.is_internal(bound)
                add("third-party attribute" if external else "attribute", node, node.attr)
            elif isinstance(node, ast.ImportFrom):
                source = pkg.absolute_module(mod, node)
                for alias in node.names:
                    if not _is_private(alias.name) or f"{source}.{alias.name}" in pkg.modules:
                        continue
                    kind = "import" if pkg.is_internal(source) else "third-party import"
                    add(kind, node, alias.name)
    for found in hits.values():
        found.sort(key=lambda h: (h["file"], h["line"]))
    return hits


# --------------------------------------------------------------------------- call chain


def calls_of(pkg: Package, fn: Function, guess: bool = False) -> list[tuple[Function, bool]]:
    """Package functions that ``fn``'s own body calls (see the module docstring's resolver).

    Parameters
    ----------
    pkg : Package
    fn : Function
    guess : bool
        Also follow ``obj.m(...)`` to the only package method named ``m``.

    Returns
    -------
    list of (Function, bool)
        Callees in source order, each with whether the edge is a guess.
    """
    mod = pkg.module_of(fn)
    found: list[tuple[Function, bool]] = []

    def class_init(target):
        cls_mod, cls = target
        return pkg.method(cls_mod, cls, "__init__")

    calls = sorted(
        (n for n in own_nodes(fn.node) if isinstance(n, ast.Call)),
        key=lambda n: (n.lineno, n.col_offset),
    )
    for call in calls:
        func, callee, guessed = call.func, None, False
        if isinstance(func, ast.Name):
            scope = fn
            while scope is not None and callee is None:
                callee = scope.nested.get(func.id)
                scope = scope.parent
            if callee is None:
                target = pkg.resolve_name(mod.name, func.id)
                if target and target[0] == "function":
                    callee = target[1]
                elif target and target[0] == "class":
                    callee = class_init(target[1])
        elif isinstance(func, ast.Attribute):
            receiver = func.value
            if fn.cls is not None and _is_own(receiver):
                is_super = isinstance(receiver, ast.Call) and receiver.func.id == "super"
                owners = pkg.bases(mod, fn.cls) if is_super else [(mod, fn.cls)]
                for owner_mod, owner in owners:
                    callee = callee or pkg.method(owner_mod, owner, func.attr)
            elif isinstance(receiver, ast.Name):
                target = pkg.resolve_name(mod.name, receiver.id)
                if target and target[0] == "module":
                    inner = pkg.resolve_name(target[1], func.attr)
                    if inner and inner[0] == "function":
                        callee = inner[1]
                    elif inner and inner[0] == "class":
                        callee = class_init(inner[1])
                elif target and target[0] == "class":  # Class.method(...) / Class.classmethod(...)
                    callee = pkg.method(target[1][0], target[1][1], func.attr)
            if callee is None and guess and not _is_own(receiver):
                callee, guessed = pkg.unique_method(func.attr), True
        if callee is not None and all(callee is not c for c, _ in found):
            found.append((callee, guessed))
    return found


def step_call(fn: Function) -> ast.Call | None:
    """The first ``<anything>.step(...)`` call in ``fn``'s own body, if any."""
    for node in sorted(
        (n for n in own_nodes(fn.node) if isinstance(n, ast.Call)), key=lambda n: n.lineno
    ):
        if isinstance(node.func, ast.Attribute) and node.func.attr == STEP_METHOD:
            return node
    return None


def call_chain(pkg: Package, start: tuple[str, str] = CHAIN_START) -> dict | None:
    """Shortest static call chain from ``start`` to a function that calls ``.step(``.

    Parameters
    ----------
    pkg : Package
    start : (str, str)
        Path and qualname of the first function.

    Returns
    -------
    dict or None
        ``chain`` (labels ``file:function``), ``guessed`` (per edge),
        ``length`` (functions), ``files`` (distinct), ``returns`` (times the
        chain comes back to a file it had left) and ``step`` (``file:line``
        and text of the step call); None if ``start`` is missing or no chain
        is found.
    """
    first = next((f for f in pkg.functions if (f.path, f.qualname) == start), None)
    if first is None:
        return None
    for guess in (False, True):
        previous = {id(first): None}
        queue = deque([first])
        while queue:
            fn = queue.popleft()
            call = step_call(fn)
            if call is not None:
                return _describe_chain(pkg, fn, previous, call)
            for callee, guessed in calls_of(pkg, fn, guess):
                if id(callee) not in previous:
                    previous[id(callee)] = (fn, guessed)
                    queue.append(callee)
    return None


def _describe_chain(pkg, last, previous, call) -> dict:
    chain, guessed = [last], []
    while previous[id(chain[-1])] is not None:
        caller, was_guess = previous[id(chain[-1])]
        chain.append(caller)
        guessed.append(was_guess)
    chain.reverse()
    guessed.reverse()
    files = [f.path for f in chain]
    returns = sum(
        1 for i in range(1, len(files)) if files[i] != files[i - 1] and files[i] in files[:i]
    )
    source = pkg.module_of(last).source.splitlines()
    return {
        "chain": [f.label for f in chain],
        "guessed": guessed,
        "length": len(chain),
        "files": len(set(files)),
        "returns": returns,
        "step": f"{last.path}:{call.lineno}: {source[call.lineno - 1].strip()}",
    }


# --------------------------------------------------------------------------- report


def measure(sources: dict[str, str]) -> dict:
    """All four measures of a package (see the module docstring).

    Parameters
    ----------
    sources : dict of str to str
        Source text by path (from :func:`read_sources`).

    Returns
    -------
    dict
        ``files``, ``package_lines``, ``classifier_lines``, ``n_functions``,
        ``functions`` (the :data:`TOP` longest), ``private_reaches`` and ``chain``.
    """
    pkg = Package(sources)
    sizes = function_sizes(pkg)
    return {
        "files": len(sources),
        "package_lines": sum(file_lines(s)["total"] for s in sources.values()),
        "classifier_lines": (
            file_lines(sources[CLASSIFIER_FILE]) if CLASSIFIER_FILE in sources else None
        ),
        "n_functions": len(sizes),
        "functions": sizes[:TOP],
        "private_reaches": private_reaches(pkg),
        "chain": call_chain(pkg),
    }


def to_markdown(result: dict, title: str) -> str:
    """The measures as a short markdown report."""
    out = [f"### {title}", "", "| measure | value |", "|---|---|"]
    cl = result["classifier_lines"]
    out.append(
        f"| `{CLASSIFIER_FILE}` lines (total / code) | "
        + ("absent" if cl is None else f"{cl['total']} / {cl['code']}") + " |"
    )
    out.append(f"| package: files / lines / functions | {result['files']} / "
               f"{result['package_lines']} / {result['n_functions']} |")
    if result["functions"]:
        top = result["functions"][0]
        out.append(f"| longest function (total / code) | `{top['name']}` "
                   f"{top['total']} / {top['code']} |")
    reaches = result["private_reaches"]
    out.append("| private reaches: attribute / import | "
               f"{len(reaches['attribute'])} / {len(reaches['import'])} |")
    out.append("| third-party private reaches: attribute / import | "
               f"{len(reaches['third-party attribute'])} / {len(reaches['third-party import'])} |")
    chain = result["chain"]
    if chain is None:
        out.append("| fit -> optimizer.step chain | not found |")
    else:
        out.append(f"| fit -> optimizer.step: functions / files / returns to a file | "
                   f"{chain['length']} / {chain['files']} / {chain['returns']} |")
    out += ["", f"Longest functions (top {TOP}):", ""]
    out += ["| function | total | code |", "|---|---|---|"]
    out += [f"| `{r['name']}` ({r['file']}:{r['line']}) | {r['total']} | {r['code']} |"
            for r in result["functions"]]
    if chain is not None:
        arrows = [" ~> " if g else " -> " for g in chain["guessed"]] + [""]
        out += ["", "Chain: " + "".join(f"`{c}`{a}" for c, a in zip(chain["chain"], arrows)),
                f"Step call: `{chain['step']}`"]
    for kind, found in reaches.items():
        if found:
            out += ["", f"Private reaches, {kind} ({len(found)}):", ""]
            out += [f"- {h['file']}:{h['line']} `{h['name']}`: `{h['text']}`" for h in found]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``[--commit REV] [--root DIR] [--json]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--commit", help="git revision to read (default: the working tree)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="repository root (default: the one holding this script)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    args = parser.parse_args(argv)
    sources = read_sources(args.root, args.commit)
    if not sources:
        where = args.commit or "the working tree"
        parser.error(f"no {PACKAGE}/**/*.py under {args.root} at {where}")
    result = measure(sources)
    if args.json:
        result["commit"] = args.commit
        print(json.dumps(result, indent=2))
    else:
        if args.commit:
            rev = subprocess.run(["git", "-C", str(args.root), "rev-parse", "--short", args.commit],
                                 check=True, capture_output=True, text=True).stdout.strip()
            title = f"{PACKAGE} at {rev}"
        else:
            title = f"{PACKAGE} in {args.root}"
        print(to_markdown(result, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
