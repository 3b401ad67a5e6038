"""The package's architecture, checked over every module it has now or will have.

Every module of ``caffe_layers`` is found by walking the package and its imports are read with
``ast`` (those inside functions too, and module names written as strings for ``importlib``):

- the layer order, bottom up (``LEVELS``): a module imports only its own unit (module or
  subpackage) and units of lower levels; a unit that is not placed in the order is an error, so
  a new module must be placed before it can pass;
- ``prefetch`` knows only the producer protocol: it imports errors and sampling, no data format;
- no module imports ``caffe``: the adapters get it through ``pycaffe.import_caffe()``, which
  imports the package's fake by its module name (the one reference from production code to
  ``testing``, allowed here explicitly);
- importing any module loads none of cv2, h5py, lmdb, plyvel, fsspec and caffe (adapters: caffe
  only), checked in a fresh interpreter (fsspec: only a URL loads it).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import caffe_layers

PACKAGE = "caffe_layers"
ROOT = Path(caffe_layers.__file__).resolve().parent

LEVELS = [
    ("caffe_layers", "errors"),
    ("config", "files", "bijections", "protowire"),  # bijections: pure numpy, under sampling
    ("binaryproto", "sampling", "ranks", "datum"),  # ranks: the launcher's environment, no caffe
    ("normalization",),
    ("sources", "transforms", "prefetch"),  # prefetch: see PREFETCH_MAY_IMPORT
    ("params",),
    ("pipeline",),  # sources and transforms composed into producers for prefetch
    ("pycaffe",),
    ("layers",),  # the caffe.Layer adapters
    ("testing",),
    ("tools",),
    ("__main__",),
]
PREFETCH_MAY_IMPORT = {"prefetch", "errors", "sampling"}
ADAPTERS = {"caffe_layers.layers", "caffe_layers.testing.example_layers"}  # subclass caffe.Layer
ALLOWED_UPWARD = {("caffe_layers.pycaffe", "caffe_layers.testing.fake_caffe")}
HEAVY = ("caffe", "cv2", "h5py", "lmdb", "plyvel", "fsspec")
_MODULE_STRING = re.compile(rf"{PACKAGE}(\.\w+)+\.?")  # "caffe_layers.x", f"caffe_layers.x."


def package_sources(root: Path = ROOT) -> Dict[str, str]:
    """``{module name: source}`` of every module of the package."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path.read_text(encoding="utf-8")
    return found


def unit(module: str) -> str:
    """``'caffe_layers.sources.hdf5'`` -> ``'sources'``; the package itself is its own unit."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def level(module: str) -> int | None:
    for number, units in enumerate(LEVELS):
        if unit(module) in units:
            return number
    return None


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, source: str, known: Set[str]) -> Iterator[Tuple[str, str]]:
    """``(imported module, how)`` for every import and module-name string of ``source``."""
    is_package = f"{module}.__init__" in known or any(k.startswith(module + ".") for k in known)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, "import"
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            for alias in node.names:
                full = f"{target}.{alias.name}"
                yield (full if full in known else target), "import"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _MODULE_STRING.fullmatch(node.value):
            yield node.value.rstrip("."), "string"


def violations(sources: Dict[str, str]) -> List[str]:
    """Every break of the rules in the module docstring, one line each."""
    known = set(sources)
    found = []
    for module, source in sorted(sources.items()):
        if level(module) is None:
            found.append(f"{module}: unit '{unit(module)}' is not placed in LEVELS")
            continue
        for target, how in imports(module, source, known):
            found += _check(module, target, how)
    return found


def _check(module: str, target: str, how: str) -> List[str]:
    top = target.split(".")[0]
    if top == "caffe":
        return [f"{module}: imports caffe; get it from caffe_layers.pycaffe.import_caffe()"]
    if top != PACKAGE or unit(target) == unit(module) or (module, target) in ALLOWED_UPWARD:
        return []
    if unit(module) == "prefetch" and unit(target) not in PREFETCH_MAY_IMPORT:
        return [f"{module}: prefetch knows only the producer protocol, but it imports {target}"]
    mine, theirs = level(module), level(target)
    if theirs is None or theirs >= mine:
        where = "not placed" if theirs is None else ("a peer" if theirs == mine else "above it")
        return [f"{module}: imports {target} ({how}), which is {where} in the layer order"]
    return []


_PROBE = textwrap.dedent("""
    import importlib, json, sys
    heavy = {heavy!r}
    def loaded():
        return {{name.split(".")[0] for name in sys.modules}} & set(heavy)
    report = {{}}
    for name in {modules!r}:
        before = loaded()
        importlib.import_module(name)
        report[name] = sorted(loaded() - before)
    print(json.dumps(report))
""")


def heavy_imports(modules: List[str], path: str = "") -> Dict[str, List[str]]:
    """In a fresh interpreter, the heavy modules importing each of ``modules`` (in order) loads.
    """
    code = _PROBE.format(heavy=HEAVY, modules=modules)
    env = dict(os.environ, CAFFE_LAYERS_FAKE_CAFFE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [path, str(ROOT.parent)])))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT.parent)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def bottom_up(modules) -> List[str]:
    """Lower levels first, adapters last, so each import adds only what that module loads."""
    return sorted(modules, key=lambda m: (m in ADAPTERS, level(m) or 0, m))


# --- the package -------------------------------------------------------------------------------


def test_the_walk_finds_every_module():
    sources = package_sources()
    assert {"caffe_layers", "caffe_layers.prefetch.engine", "caffe_layers.testing.fake_caffe",
            "caffe_layers.tools.preview", "caffe_layers.__main__"} <= set(sources)
    assert len(sources) == len(list(ROOT.rglob("*.py")))


def test_every_module_keeps_the_layer_order_and_the_import_rules():
    assert violations(package_sources()) == []


def test_importing_any_module_loads_no_heavy_library():
    report = heavy_imports(bottom_up(package_sources()))
    heavy = {module: loaded for module, loaded in report.items() if loaded}
    assert {m: loaded for m, loaded in heavy.items() if m not in ADAPTERS} == {}
    assert all(heavy.get(adapter, ["caffe"]) == ["caffe"] for adapter in ADAPTERS), heavy


# --- a module added later that breaks a rule turns the tests red -------------------------------


def with_module(name: str, source: str) -> Dict[str, str]:
    return {**package_sources(), name: textwrap.dedent(source)}


def test_an_import_up_the_order_is_refused():
    found = violations(with_module("caffe_layers.sources.cache", """
        def build():
            from caffe_layers.pipeline import Pipeline  # a lazy import counts as well
            return Pipeline
    """))
    assert found == ["caffe_layers.sources.cache: imports caffe_layers.pipeline (import), which "
                     "is above it in the layer order"]


def test_a_peer_import_and_a_relative_import_are_refused():
    found = violations(with_module("caffe_layers.transforms", """
        from .sources import images
    """))
    assert found == ["caffe_layers.transforms: imports caffe_layers.sources.images (import), "
                     "which is a peer in the layer order"]


def test_prefetch_may_not_know_a_data_format():
    found = violations(with_module("caffe_layers.prefetch.readers", """
        from caffe_layers.sources.hdf5 import HDF5Reader
    """))
    assert found == ["caffe_layers.prefetch.readers: prefetch knows only the producer "
                     "protocol, but it imports caffe_layers.sources.hdf5"]


def test_caffe_is_imported_by_no_module():
    found = violations(with_module("caffe_layers.testing.my_layers", "import caffe\n"))
    assert found == ["caffe_layers.testing.my_layers: imports caffe; get it from "
                     "caffe_layers.pycaffe.import_caffe()"]


def test_a_module_name_in_a_string_counts_as_an_import():
    found = violations(with_module("caffe_layers.pipeline.lazy", """
        import importlib
        runner = importlib.import_module("caffe_layers.testing.runner")
    """))
    assert found == ["caffe_layers.pipeline.lazy: imports caffe_layers.testing.runner "
                     "(string), which is above it in the layer order"]


def test_a_new_unit_must_be_placed_in_the_order():
    found = violations(with_module("caffe_layers.cache", "import os\n"))
    assert found == ["caffe_layers.cache: unit 'cache' is not placed in LEVELS"]


def test_a_module_that_imports_a_heavy_library_at_import_is_found(tmp_path):
    (tmp_path / "eager_probe.py").write_text("import h5py\n")
    (tmp_path / "lazy_probe.py").write_text("def read():\n    import h5py\n")
    report = heavy_imports(["caffe_layers.errors", "lazy_probe", "eager_probe"], str(tmp_path))
    assert report == {"caffe_layers.errors": [], "lazy_probe": [], "eager_probe": ["h5py"]}
