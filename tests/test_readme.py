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


def test_every_picture_the_readme_shows_is_committed_and_small():
    import cv2

    pictures = re.findall(r"!\[[^\]]+\]\(([^)\s]+)\)", README)
    assert len(pictures) >= 4  # a TRAIN and a TEST preview, an --augment strip, a mean image
    for picture in pictures:
        path = ROOT / picture
        assert path.is_file(), f"README shows {picture}: run python scripts/readme_pictures.py"
        assert path.stat().st_size < 100 * 1024, f"{picture} is over 100 KB"
        assert cv2.imread(str(path)) is not None, f"{picture} is not an image OpenCV reads"


def test_readme_pictures_makes_every_picture_the_readme_shows(tmp_path):
    """The script writes them all (and only them), twice the same bytes: deterministic."""
    import subprocess
    import sys

    shown = {Path(p).name for p in re.findall(r"!\[[^\]]+\]\(docs/images/([^)\s]+)\)", README)}
    made = []
    for run in ("first", "second"):
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_pictures.py"),
                               "--out", str(tmp_path / run)], capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        made.append({p.name: p.read_bytes() for p in (tmp_path / run).iterdir()})
    assert set(made[0]) == shown
    assert made[0] == made[1]
