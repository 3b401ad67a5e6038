"""What the tools share: exit statuses, the progress bar, `python -m caffe_layers`, the wrappers."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from caffe_layers.errors import ConfigError, DataError, WorkerError
from caffe_layers.tools import _cli
from caffe_layers.tools.progress import Progress, format_seconds

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("make_list", "check_list", "compute_mean", "convert_hdf5", "convert_db", "preview", "demo",
         "bench")
ENV = dict(os.environ, PYTHONPATH=str(REPO), CAFFE_LAYERS_FAKE_CAFFE="1")


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


# --- the progress bar --------------------------------------------------------------------------

def test_progress_is_silent_off_a_terminal():
    stream = io.StringIO()
    with Progress(10, "work", stream=stream) as bar:
        bar.advance(10)
    assert stream.getvalue() == ""
    assert bar.done == 10


def test_progress_draws_on_a_terminal_unless_disabled():
    stream = Terminal()
    with Progress(4, "work", stream=stream, min_interval_s=0) as bar:
        bar.advance()
        bar.advance(3)
    text = stream.getvalue()
    assert text.count("\r") == 3
    assert text.endswith("\n")
    assert "work [#####---------------] 1/4   25%" in text
    assert "4/4  100%" in text
    assert "ETA 0:00:00" in text
    quiet = Terminal()
    with Progress(4, "work", stream=quiet, enabled=False) as bar:
        bar.advance(4)
    assert quiet.getvalue() == ""


def test_progress_close_is_idempotent_and_throttles():
    stream = Terminal()
    bar = Progress(1000, "w", stream=stream, min_interval_s=3600)
    for _ in range(999):
        bar.advance()
    bar.close()
    bar.close()
    assert stream.getvalue().count("\r") == 2  # the first draw and the close; the rest throttled
    assert stream.getvalue().count("\n") == 1


def test_format_seconds():
    assert format_seconds(0) == "0:00:00"
    assert format_seconds(3725.4) == "1:02:05"


# --- the error convention ----------------------------------------------------------------------

def body_raising(exc: BaseException):
    def body(args):
        raise exc
    return body


@pytest.mark.parametrize(("exc", "status", "message"), [
    (ConfigError("bad key"), 2, "bad key"),
    (DataError("bad image"), 1, "bad image"),
    (WorkerError("worker said no"), 1, "worker said no"),
    (FileNotFoundError(2, "No such file or directory", "x/y.txt"), 1,
     "cannot access 'x/y.txt': No such file or directory"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_run_turns_errors_into_one_line(capsys, exc, status, message):
    parser = _cli.make_parser("thing", "does things")
    assert _cli.run(parser, body_raising(exc), []) == status
    assert capsys.readouterr().err == f"caffe-layers-thing: error: {message}\n"


def test_run_returns_the_body_status_and_argparse_codes(capsys):
    parser = _cli.make_parser("thing", "does things")
    parser.add_argument("--n", type=_cli.positive_int)
    assert _cli.run(parser, lambda args: None, []) == 0
    assert _cli.run(parser, lambda args: 3, []) == 3
    assert _cli.run(parser, lambda args: 0, ["--help"]) == 0
    assert _cli.run(parser, lambda args: 0, ["--n", "0"]) == 2
    assert "argument --n: must be an integer >= 1, got '0'" in capsys.readouterr().err


def test_a_bug_is_not_hidden():
    parser = _cli.make_parser("thing", "does things")
    with pytest.raises(ZeroDivisionError):
        _cli.run(parser, lambda args: 1 // 0, [])


# --- python -m caffe_layers, the scripts, the console scripts ----------------------------------

def python(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=str(cwd), env=ENV, capture_output=True,
                          text=True, timeout=60)


def test_python_m_caffe_layers_dispatches(tmp_path):
    (tmp_path / "a").mkdir()
    done = python("-m", "caffe_layers", "make-list", str(tmp_path / "a"))
    assert done.returncode == 1
    assert done.stderr.startswith("caffe-layers-make-list: error: folder ")
    unknown = python("-m", "caffe_layers", "train")
    assert unknown.returncode == 2
    assert "unknown tool 'train'" in unknown.stderr
    bare = python("-m", "caffe_layers")
    assert bare.returncode == 2
    assert bare.stderr.startswith("usage: python -m caffe_layers")


@pytest.mark.parametrize("tool", TOOLS)
def test_script_wrappers_run_from_anywhere(tmp_path, tool):
    done = python(str(REPO / "scripts" / f"{tool}.py"), "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: caffe-layers-{tool.replace('_', '-')}")


def test_console_scripts_point_at_the_tools():
    text = (REPO / "pyproject.toml").read_text()
    table = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    entries = dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.:]+)"', table, re.MULTILINE))
    assert entries == {f"caffe-layers-{t.replace('_', '-')}": f"caffe_layers.tools.{t}:main"
                       for t in TOOLS}


def test_tools_import_nothing_heavy():
    code = ("import sys\n"
            + "".join(f"import caffe_layers.tools.{t}\n" for t in TOOLS)
            + "import caffe_layers.__main__\n"
            + "print(sorted(m for m in ('cv2', 'h5py', 'caffe', 'lmdb', 'plyvel') "
              "if m in sys.modules))")
    done = python("-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
