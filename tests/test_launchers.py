"""Sharding under real launchers: Open MPI's mpirun, SLURM-style and RANK/WORLD_SIZE variables.

Each rank runs the prototxt runner (as ``caffe train`` would run) or a pycaffe-style train.py
with a net whose second layer records the sample ids it receives. Per epoch, the ranks' samples
must be disjoint and cover the dataset, shuffled or not. Needs ``mpirun`` (Debian's
``openmpi-bin``; CI installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import real_caffe
from runner_harness import REPOSITORY, _session_members, write_images

from caffe_layers.testing import leaks

TESTS = Path(__file__).resolve().parent
N, BATCH = 48, 4  # 48 divides evenly among 2, 3, 4 and 8 shards (conftest.py clears the
# launcher variables of the process running the suite)
needs_mpirun = pytest.mark.skipif(shutil.which("mpirun") is None,
                                  reason="no mpirun: apt-get install openmpi-bin")


def write_net(folder: Path, shuffle: bool) -> None:
    params = (f"{{source: train.txt, batch_size: {BATCH}, shuffle: {str(shuffle).lower()}, "
              f"seed: 5, workers: 1, prefetch: 2}}")
    (folder / "records").mkdir()
    (folder / "net.prototxt").write_text(f"""
layer {{ name: "data" type: "Python" top: "data" top: "label"
  python_param {{ module: "caffe_layers.layers" layer: "ImageListDataLayer"
                 param_str: "{params}" }} }}
layer {{ name: "record" type: "Python" bottom: "label"
  python_param {{ module: "launcher_probe" layer: "LabelRecorder"
                 param_str: "{{record_dir: {folder / 'records'}}}" }} }}
layer {{ name: "silence" type: "Silence" bottom: "data" }}
""")
    iterations = 2 * N // BATCH  # two epochs of a single shard: more than enough for any
    (folder / "solver.prototxt").write_text(
        f'net: "net.prototxt"\nmax_iter: {iterations}\ndisplay: 0\nbase_lr: 0.01\n'
        f'lr_policy: "fixed"\nsolver_mode: CPU\nsnapshot_after_train: false\n')


def environment(**variables: str) -> dict:
    path = [str(REPOSITORY), str(TESTS), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)), **variables)


def start(command: list, folder: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple:
    """``(exit code, output)``; afterwards nothing of the process's session may survive."""
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    survivors = leaks.wait_gone(_session_members(process.pid), timeout_s=5.0)
    assert not survivors, f"processes outlived the launch: {sorted(survivors)}\n{output}"
    return process.returncode, output


def run(command: list, folder: Path, env: dict, timeout: float = 120) -> tuple:
    return finish(start(command, folder, env), timeout)


def mpirun(ranks: int, *command: str, env_flags=()) -> list:
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    return ["mpirun", "-np", str(ranks), "--oversubscribe", *root, *env_flags, *command]


RUNNER = [sys.executable, "-m", "caffe_layers.testing.runner", "solver.prototxt"]


def recorded(folder: Path) -> list:
    """Each process's recorded sample ids, in the order it received them."""
    streams = []
    for path in sorted((folder / "records").iterdir()):
        streams.append([int(v) for line in path.read_text().split("\n") for v in line.split()])
    return streams


def assert_epochs_partitioned(streams: list, shards: int, epochs: int = 2) -> None:
    assert len(streams) == shards, f"{len(streams)} processes recorded, expected {shards}"
    per_shard = N // shards
    for epoch in range(epochs):
        parts = [stream[epoch * per_shard:(epoch + 1) * per_shard] for stream in streams]
        assert all(len(part) == per_shard for part in parts), "a shard read too few samples"
        assert sorted(sum(parts, [])) == list(range(N)), f"epoch {epoch}: not a partition"


@needs_mpirun
@pytest.mark.parametrize("shuffle", [True, False])
def test_mpirun_ranks_read_disjoint_shards_covering_every_epoch(tmp_path, shuffle):
    write_images(tmp_path, N)
    write_net(tmp_path, shuffle)
    code, output = run(mpirun(4, *RUNNER), tmp_path, environment())
    assert code == 0, output
    assert_epochs_partitioned(recorded(tmp_path), 4)
    for rank in range(4):
        assert f"shard {rank} of 4 (Open MPI rank {rank} of 4)" in output


@needs_mpirun
def test_mpirun_ranks_times_pycaffe_solvers_give_global_shards(tmp_path):
    """mpirun -np 2, each rank a train.py with 2 solvers: 4 shards."""
    write_images(tmp_path, N)
    write_net(tmp_path, shuffle=True)
    probe = [sys.executable, str(TESTS / "launcher_probe.py"), "net.prototxt", "2",
             str(2 * N // 4 // BATCH)]
    code, output = run(mpirun(2, *probe), tmp_path, environment())
    assert code == 0, output
    assert_epochs_partitioned(recorded(tmp_path), 4)
    assert "shard 3 of 4 (Open MPI rank 1 of 2 x solver 1 of 2)" in output


def launch_each(folder: Path, environments: list) -> list:
    """One runner per environment, all at once, as a launcher would start them."""
    return [finish(process) for process in [start(RUNNER, folder, env) for env in environments]]


@pytest.mark.parametrize("style", ["SLURM", "RANK/WORLD_SIZE"])
def test_tasks_ranked_by_slurm_or_rank_variables_split_every_epoch(tmp_path, style):
    write_images(tmp_path, N)
    write_net(tmp_path, shuffle=True)
    if style == "SLURM":  # srun's task variables, under a batch shell's allocation variables
        envs = [environment(SLURM_PROCID=str(r), SLURM_NTASKS="3", SLURM_STEP_ID="0",
                            SLURM_JOB_ID="42") for r in range(3)]
    else:
        envs = [environment(RANK=str(r), WORLD_SIZE="3") for r in range(3)]
    results = launch_each(tmp_path, envs)
    assert [code for code, _ in results] == [0, 0, 0], results
    assert_epochs_partitioned(recorded(tmp_path), 3)
    for rank, (_, output) in enumerate(results):
        assert f"shard {rank} of 3 ({style} rank {rank} of 3)" in output


@needs_mpirun
def test_a_stale_rank_exported_to_every_mpi_rank_is_refused(tmp_path):
    write_images(tmp_path, N)
    write_net(tmp_path, shuffle=True)
    code, output = run(mpirun(2, *RUNNER), tmp_path, environment(RANK="0", WORLD_SIZE="2"))
    assert code != 0
    assert ("RANK/WORLD_SIZE rank 0 of 2 (RANK=0, WORLD_SIZE=2) but Open MPI rank 1 of 2 "
            "(OMPI_COMM_WORLD_RANK=1, OMPI_COMM_WORLD_SIZE=2)") in output


def test_a_rank_without_its_size_is_refused(tmp_path):
    write_images(tmp_path, N)
    write_net(tmp_path, shuffle=True)
    [(code, output)] = launch_each(tmp_path, [environment(RANK="1")])
    assert code != 0
    assert "RANK is set but WORLD_SIZE is not" in output


@pytest.mark.real_caffe
@real_caffe.needs_binary
@needs_mpirun
def test_mpirun_ranks_of_the_real_caffe_binary_split_every_epoch(tmp_path):
    write_images(tmp_path, N)
    write_net(tmp_path, shuffle=True)
    env = real_caffe.binary_env(GLOG_logtostderr="1")  # else glog leaves caffe.* logs in TMPDIR
    command = mpirun(2, str(real_caffe.tool("caffe")), "train", "--solver", "solver.prototxt")
    code, output = run(command, tmp_path, env, timeout=300)
    assert code == 0, output[-4000:]
    assert_epochs_partitioned(recorded(tmp_path), 2)
    for rank in range(2):
        assert f"shard {rank} of 2 (Open MPI rank {rank} of 2)" in output
