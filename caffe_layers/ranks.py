"""Which shard this process reads: the launcher's global rank combined with pycaffe's solver rank.

Multi-node Caffe (Intel Caffe with MLSL, NVIDIA's fork with NCCL2, Caffe-MPI) and several
``train.py`` processes on several nodes are started by an MPI or SLURM launcher, while pycaffe's
``solver_rank()``/``solver_count()`` only count the solvers of one process group (one node). The
shard of a process is therefore ``launcher rank * solver_count + solver_rank`` of
``launcher size * solver_count``.

The launcher is read from the environment, the first complete source in this order winning:

1. ``RANK``/``WORLD_SIZE``: set per process by torchrun-style launchers, or by you;
2. Open MPI's ``mpirun``: ``OMPI_COMM_WORLD_RANK``/``OMPI_COMM_WORLD_SIZE``;
3. PMI (MPICH's and Intel MPI's ``mpiexec``, ``srun --mpi=pmi2``): ``PMI_RANK``/``PMI_SIZE``;
4. SLURM's ``srun``: ``SLURM_PROCID``/``SLURM_NTASKS``, only in a task of a job step
   (``SLURM_STEP_ID`` set). A batch or ``salloc`` shell has ``SLURM_PROCID=0`` and the
   allocation's ``SLURM_NTASKS``, which are no process's rank: there they are ignored.

The innermost launcher comes first: ``torchrun`` run by ``srun`` once per node sees its own
``RANK`` and the node's ``SLURM_PROCID``; ``mpirun`` inside an ``sbatch`` script sees its
``OMPI_*`` and the allocation's ``SLURM_*``. A lower source that describes a world of the same size
must give the same rank (``srun`` starting an MPI program sets both, and they agree); if it does
not, one of them is stale (e.g. a ``RANK`` exported in a job script reaches every process) and
that is an error naming both. A lower source of another size describes an enclosing launcher and is
ignored. A variable without its partner, a non-integer or a rank outside ``[0, size)`` is an
error. Explicit ``shard_rank``/``shard_count`` keys bypass all of this.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Mapping

from caffe_layers.errors import ConfigError

LAUNCHERS = (  # (name, rank variable, size variable), in order of precedence
    ("RANK/WORLD_SIZE", "RANK", "WORLD_SIZE"),
    ("Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("PMI", "PMI_RANK", "PMI_SIZE"),
    ("SLURM", "SLURM_PROCID", "SLURM_NTASKS"),
)
SLURM_STEP = "SLURM_STEP_ID"
_FIX = ("unset the stale variables, or set shard_rank and shard_count in param_str (which "
        "override the environment)")


@dataclasses.dataclass(frozen=True)
class LauncherRank:
    """What one launcher's variables say: this process is ``rank`` of ``size``."""

    name: str
    rank: int
    size: int
    variables: str  # e.g. "OMPI_COMM_WORLD_RANK=1, OMPI_COMM_WORLD_SIZE=4", for messages

    def __str__(self) -> str:
        return f"{self.name} rank {self.rank} of {self.size}"


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``shard_rank`` of ``shard_count`` and where that came from (``source``, for the
    setup line)."""

    shard_rank: int
    shard_count: int
    source: str = ""

    def describe(self) -> str:
        """E.g. ``shard 3 of 8 (Open MPI rank 1 of 4 x solver 1 of 2)``."""
        where = f" ({self.source})" if self.source else ""
        return f"shard {self.shard_rank} of {self.shard_count}{where}"


def _integer(environ: Mapping[str, str], name: str) -> int:
    text = environ[name].strip()
    if not text.isdigit():
        raise ConfigError(f"launcher environment: {name}={environ[name]!r} is not a non-negative "
                          f"integer; {_FIX}")
    return int(text)


def _read(environ: Mapping[str, str], name: str, rank_var: str, size_var: str):
    """The launcher's rank, None if neither variable is set; ConfigError if they are unusable."""
    present = [var for var in (rank_var, size_var) if var in environ]
    if not present:
        return None
    if len(present) == 1:
        missing = size_var if present[0] == rank_var else rank_var
        raise ConfigError(f"launcher environment: {present[0]} is set but {missing} is not; a "
                          f"launcher sets both: {_FIX}")
    rank, size = _integer(environ, rank_var), _integer(environ, size_var)
    variables = f"{rank_var}={environ[rank_var]}, {size_var}={environ[size_var]}"
    if size < 1 or rank >= size:
        raise ConfigError(f"launcher environment: {variables}: the rank must be in [0, size); "
                          f"{_FIX}")
    return LauncherRank(name, rank, size, variables)


def launcher_ranks(environ: Mapping[str, str]) -> List[LauncherRank]:
    """Every launcher whose variables are set, in order of precedence (see the module doc)."""
    found = []
    for name, rank_var, size_var in LAUNCHERS:
        if name == "SLURM" and SLURM_STEP not in environ:
            continue  # a batch or salloc shell, not a task of srun
        launcher = _read(environ, name, rank_var, size_var)
        if launcher is not None:
            found.append(launcher)
    return found


def launcher_rank(environ: Mapping[str, str] | None = None) -> LauncherRank | None:
    """The launcher that gives this process's rank, or None; ConfigError if two disagree."""
    found = launcher_ranks(os.environ if environ is None else environ)
    if not found:
        return None
    chosen = found[0]
    for other in found[1:]:
        if other.size == chosen.size and other.rank != chosen.rank:
            raise ConfigError(
                f"launcher environment: {chosen} ({chosen.variables}) but {other} "
                f"({other.variables}); both describe {chosen.size} processes, so one of them is "
                f"stale: {_FIX}")
    return chosen


def global_shard(solver_rank: int = 0, solver_count: int = 1,
                 environ: Mapping[str, str] | None = None) -> Shard:
    """This process's shard: the launcher's rank (if any) times pycaffe's solver rank."""
    if not 0 <= solver_rank < solver_count:
        raise ConfigError(f"caffe.solver_rank() {solver_rank} is not in [0, solver_count() = "
                          f"{solver_count})")
    launcher = launcher_rank(environ)
    solver = f"solver {solver_rank} of {solver_count}" if solver_count > 1 else ""
    if launcher is None:
        return Shard(solver_rank, solver_count, solver)
    source = f"{launcher} x {solver}" if solver else str(launcher)
    return Shard(launcher.rank * solver_count + solver_rank, launcher.size * solver_count, source)
