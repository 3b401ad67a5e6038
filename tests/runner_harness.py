"""Drive the prototxt runner (or real `caffe train`) in a subprocess and watch it.

Used by the fault-matrix tests: a small image dataset and a solver in a temporary directory, the
runner started in its own session (so a signal can reach its whole process group), its output
read line by line, its worker processes found through /proc. ``Runner(folder, command=...,
env=...)`` runs another command the same way (tests/real_caffe.py: ``caffe_train``).
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from caffe_layers.testing import leaks

REPOSITORY = Path(__file__).resolve().parent.parent


def write_images(folder, count=40, size=(24, 32), seed=0):
    """``count`` JPEGs ``img/<i>.jpg`` under ``folder`` and ``train.txt`` labelling image i as i."""
    folder = Path(folder)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(count):
        image = rng.integers(0, 256, size + (3,), dtype=np.uint8)
        cv2.imwrite(str(folder / "img" / f"{i}.jpg"), image)
        lines.append(f"img/{i}.jpg {i}\n")
    (folder / "train.txt").write_text("".join(lines))
    return folder / "train.txt"


def write_solver(folder, param_str, max_iter=100000, display=10):
    """A TRAIN-only net with an ImageListDataLayer (``param_str``) and its solver."""
    folder = Path(folder)
    (folder / "net.prototxt").write_text(f"""
layer {{
  name: "data" type: "Python" top: "data" top: "label"
  python_param {{ module: "caffe_layers.layers" layer: "ImageListDataLayer"
                 param_str: "{param_str}" }}
}}
layer {{ name: "silence" type: "Silence" bottom: "data" bottom: "label" }}
""")
    (folder / "solver.prototxt").write_text(
        f'net: "net.prototxt"\nmax_iter: {max_iter}\ndisplay: {display}\nbase_lr: 0.01\n'
        f'lr_policy: "fixed"\nsolver_mode: CPU\nsnapshot_after_train: false\n')
    return folder / "solver.prototxt"


class Runner:
    """``python -m caffe_layers.testing.runner solver.prototxt`` with the fake caffe (or
    ``command``, run with ``env``) in its own session."""

    def __init__(self, folder, *args, command=None, env=None):
        if command is None:
            command = [sys.executable, "-m", "caffe_layers.testing.runner", "solver.prototxt",
                       *args]
            env = dict(os.environ, CAFFE_LAYERS_FAKE_CAFFE="1", PYTHONPATH=os.pathsep.join(
                filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(
            [str(part) for part in command], cwd=folder, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self):
        return "".join(self.lines)

    def wait_for(self, text, timeout=30.0):
        """Wait until ``text`` was printed."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"runner never printed {text!r}; output:\n{self.output}")
            time.sleep(0.02)
        return self

    @property
    def workers(self):
        """Worker pids, as the layers' setup lines and respawn messages name them."""
        started = {int(pid) for pids in re.findall(r"pids ([\d, ]+)\)", self.output)
                   for pid in pids.split(", ")}
        return started | {int(pid) for pid in re.findall(r"restarted as pid (\d+)", self.output)}

    def signal(self, signum, group=False):
        if group:
            os.killpg(self.process.pid, signum)
        else:
            os.kill(self.process.pid, signum)

    def finish(self, timeout=60.0):
        """The runner's return code (negative: killed by that signal), after its output ends."""
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._reader.join(10)
        self.process.stdout.close()
        return code

    def group_alive(self):
        """Whether any process of the runner's session is still alive."""
        return any(leaks.alive(pid) for pid in _session_members(self.process.pid))


def _session_members(sid):
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    members.append(int(entry))
            except OSError:
                continue
    return members
