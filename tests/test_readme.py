"""The README stays true: its commands exist and its parameter tables match the code."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_parameter_table_is_the_generated_one():
    param_tables = load_script("param_tables")
    assert param_tables.update(README) == README, \
        "README.md's tables are stale: run python scripts/param_tables.py --update"


def test_the_two_commands_are_make_targets():
    assert "make demo" in README and "make test" in README
    targets = re.findall(r"^(\w+):", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert {"demo", "test"} <= set(targets)


def test_every_script_the_readme_names_exists():
    for script in set(re.findall(r"python (scripts/\w+\.py)", README)):
        assert (ROOT / script).is_file(), script
