"""Engine scenarios that need a process of their own: ``python engine_scenarios.py NAME METHOD``.

Run by test_prefetch.py. Each prints one JSON line on stdout.
"""

import hashlib
import json
import os
import sys
import time
import types

from engine_producers import ID_SPECS, IdProducer, collect

from caffe_layers.prefetch import Prefetcher, SamplePlan
from caffe_layers.sampling import SampleStream, ShuffledOrder


def make_engine(method, workers=2, delay_s=0.0):
    plan = SamplePlan(SampleStream(ShuffledOrder(23, 7), 5), seed=7)
    return Prefetcher(IdProducer(delay_s=delay_s), ID_SPECS, plan, workers=workers,
                      start_method=method, prefetch=2)


def serve_forever(method):
    """Print our pid and the workers' pids, then consume batches until killed."""
    engine = make_engine(method, delay_s=0.01)
    print(json.dumps({"pid": os.getpid(), "workers": engine.pids}), flush=True)
    while True:
        engine.next_arrays()


def embedded(method, executable=""):
    """Look like the caffe binary's embedded interpreter (CAFFE.md), then run the engine."""
    sys.argv = [""]
    sys.executable = executable
    sys.modules["__main__"] = types.ModuleType("__main__")
    import multiprocessing.spawn

    multiprocessing.spawn.set_executable(executable)
    with make_engine(method) as engine:
        ids, noise = collect(engine, 12)
    digest = hashlib.sha256(ids.tobytes() + noise.tobytes()).hexdigest()
    print(json.dumps({"digest": digest, "start_method": engine.start_method}), flush=True)


def exit_without_close(method):
    """Start an engine and return from the script without closing it (plain interpreter exit)."""
    engine = make_engine(method)
    engine.next_arrays()
    print(json.dumps({"pid": os.getpid(), "workers": engine.pids}), flush=True)
    time.sleep(0.2)
    os._exit(0)  # like caffe: no atexit, no finalizers


if __name__ == "__main__":
    scenario, arguments = sys.argv[1], sys.argv[2:]
    globals()[scenario](*arguments)
