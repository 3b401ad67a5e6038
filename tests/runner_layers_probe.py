"""Python layers for tests/test_runner.py: they record what the runner makes them do.

``param_str`` is YAML. Every layer has one top per name in the prototxt, shaped ``(batch, 2)``.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import caffe
import yaml

PHASES = {0: "train", 1: "test"}
calls: list = []  # (phase, method) of every call; shared by the TRAIN and TEST instances


def _record(layer: caffe.Layer, method: str) -> None:
    entry = (PHASES[int(layer.phase)], method)
    calls.append(entry)
    path = layer.params.get("record_file")
    if path:
        with open(path, "a") as out:
            out.write(" ".join(entry) + "\n")


class RecordLayer(caffe.Layer):
    """Records every call; ``{sigint_at: n}``/``{sighup_at: n}`` sends that signal to its own
    process in its n-th TRAIN forward (1-based), as a Ctrl-C or a ``kill -HUP`` would."""

    def setup(self, bottom, top):
        self.params = yaml.safe_load(self.param_str) or {}
        self.forwards = 0
        _record(self, "setup")
        self._shape(top)

    def _shape(self, top):
        for i in range(len(top)):  # {batch: -1} makes Caffe's CHECK on the shape fail
            top[i].reshape(self.params.get("batch", 2), 2)

    def reshape(self, bottom, top):
        _record(self, "reshape")
        self._shape(top)

    def forward(self, bottom, top):
        _record(self, "forward")
        if self.phase == 0:
            self.forwards += 1
            for name, signum in (("sigint_at", signal.SIGINT), ("sighup_at", signal.SIGHUP)):
                if self.params.get(name) == self.forwards:
                    os.kill(os.getpid(), signum)

    def backward(self, top, propagate_down, bottom):
        _record(self, "backward")


class FailingLayer(RecordLayer):
    """Raises ``RuntimeError`` in the method named by ``{fail_in: ...}``, after printing a line."""

    def _maybe_fail(self, method):
        if self.params.get("fail_in") == method:
            print(f"FailingLayer prints before failing in {method}", flush=True)
            raise RuntimeError(f"deliberate failure in {method}")

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self._maybe_fail("setup")

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self._maybe_fail("reshape")

    def forward(self, bottom, top):
        super().forward(bottom, top)
        self._maybe_fail("forward")


class FailingInitLayer(caffe.Layer):
    """Raises in ``__init__``: Caffe prints this traceback (CAFFE.md, "Errors")."""

    def __init__(self, param):
        super().__init__(param)
        raise ValueError("deliberate failure in __init__")


class EnvProbeLayer(RecordLayer):
    """Writes what the layer sees of its interpreter to ``{env_file: path}`` as JSON in setup."""

    def setup(self, bottom, top):
        super().setup(bottom, top)
        import multiprocessing.spawn

        main = sys.modules["__main__"]
        cwd = os.path.realpath(os.getcwd())
        facts = {
            "argv": sys.argv,
            "executable": sys.executable,
            "spawn_executable": os.fsdecode(multiprocessing.spawn.get_executable()),
            "main_has_file": hasattr(main, "__file__"),
            "empty_on_path": "" in sys.path or "." in sys.path,
            "cwd_on_path": any(os.path.realpath(p) == cwd for p in sys.path if p),
        }
        with open(self.params["env_file"], "w") as out:
            json.dump(facts, out)
