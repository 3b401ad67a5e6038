"""The global rank from the launcher's environment: each launcher, precedence, agreement, bad input.

The environments are what each launcher sets (Open MPI's were read from a real ``mpirun``; the
launcher tests in test_launchers.py run the real thing)."""

import pytest

from caffe_layers.errors import ConfigError
from caffe_layers.ranks import global_shard, launcher_rank

OPEN_MPI = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4",
            "OMPI_COMM_WORLD_LOCAL_RANK": "1", "PMIX_RANK": "1"}
MPICH = {"PMI_RANK": "2", "PMI_SIZE": "4"}
SRUN = {"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "77"}
SBATCH_SHELL = {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "77"}
TORCHRUN = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}


@pytest.mark.parametrize(("environ", "expected"), [
    (OPEN_MPI, "Open MPI rank 1 of 4"),
    (MPICH, "PMI rank 2 of 4"),
    (SRUN, "SLURM rank 3 of 4"),
    (TORCHRUN, "RANK/WORLD_SIZE rank 5 of 8"),
])
def test_each_launcher_gives_the_rank(environ, expected):
    assert str(launcher_rank(environ)) == expected


def test_no_launcher_means_the_solver_rank_alone():
    assert launcher_rank({"HOME": "/root"}) is None
    assert global_shard(1, 2, {}).describe() == "shard 1 of 2 (solver 1 of 2)"
    assert global_shard(0, 1, {}).shard_count == 1


def test_launcher_and_solver_ranks_combine_into_a_global_rank():
    shards = [global_shard(solver, 2, dict(OPEN_MPI, OMPI_COMM_WORLD_RANK=str(rank)))
              for rank in range(4) for solver in range(2)]
    assert [s.shard_rank for s in shards] == list(range(8))
    assert {s.shard_count for s in shards} == {8}
    assert shards[3].describe() == "shard 3 of 8 (Open MPI rank 1 of 4 x solver 1 of 2)"
    assert global_shard(0, 1, OPEN_MPI).describe() == "shard 1 of 4 (Open MPI rank 1 of 4)"


def test_srun_starting_an_mpi_program_sets_both_and_they_agree():
    environ = dict(SRUN, PMI_RANK="3", PMI_SIZE="4")
    assert str(launcher_rank(environ)) == "PMI rank 3 of 4"


def test_mpirun_in_a_batch_script_ignores_the_allocation():
    """sbatch's shell has SLURM_PROCID=0 and SLURM_NTASKS=4 in every rank mpirun starts."""
    assert str(launcher_rank(dict(SBATCH_SHELL, **OPEN_MPI))) == "Open MPI rank 1 of 4"
    assert launcher_rank(SBATCH_SHELL) is None  # `python train.py` in the batch script itself


def test_an_enclosing_launcher_of_another_size_is_ignored():
    """torchrun started by srun once per node: the task's SLURM rank is the node's."""
    environ = dict(TORCHRUN, SLURM_PROCID="1", SLURM_NTASKS="2", SLURM_STEP_ID="0")
    assert str(launcher_rank(environ)) == "RANK/WORLD_SIZE rank 5 of 8"


def test_two_launchers_of_one_size_that_disagree_are_an_error():
    stale = dict(OPEN_MPI, RANK="0", WORLD_SIZE="4")  # RANK exported in the job script
    with pytest.raises(ConfigError) as error:
        launcher_rank(stale)
    message = str(error.value)
    assert "RANK/WORLD_SIZE rank 0 of 4 (RANK=0, WORLD_SIZE=4)" in message
    assert "Open MPI rank 1 of 4 (OMPI_COMM_WORLD_RANK=1, OMPI_COMM_WORLD_SIZE=4)" in message
    assert "shard_rank and shard_count" in message
    with pytest.raises(ConfigError, match="PMI rank 2 of 4 .* SLURM rank 3 of 4"):
        launcher_rank(dict(MPICH, **SRUN))


@pytest.mark.parametrize(("environ", "message"), [
    ({"RANK": "1"}, "RANK is set but WORLD_SIZE is not"),
    ({"OMPI_COMM_WORLD_SIZE": "4"}, "OMPI_COMM_WORLD_SIZE is set but OMPI_COMM_WORLD_RANK is not"),
    ({"SLURM_PROCID": "1", "SLURM_STEP_ID": "3"}, "SLURM_PROCID is set but SLURM_NTASKS is not"),
    ({"PMI_RANK": "4", "PMI_SIZE": "4"}, r"PMI_RANK=4, PMI_SIZE=4: the rank must be in \[0, s"),
    ({"RANK": "0", "WORLD_SIZE": "0"}, r"the rank must be in \[0, size\)"),
    ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK='-1' is not a non-negative integer"),
    ({"RANK": "one", "WORLD_SIZE": "2"}, "RANK='one' is not a non-negative integer"),
])
def test_unusable_variables_are_an_error_naming_them(environ, message):
    with pytest.raises(ConfigError, match=message):
        global_shard(0, 1, environ)


def test_a_solver_rank_out_of_range_is_an_error():
    with pytest.raises(ConfigError, match=r"solver_rank\(\) 2 is not in \[0, solver_count\(\) = 2"):
        global_shard(2, 2, {})
