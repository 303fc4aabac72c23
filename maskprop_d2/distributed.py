"""Multi-process runs: detectron2's ``launch`` plus the processes a launcher such as ``torchrun``
starts, on GPUs (NCCL) or CPUs (gloo). See ``docs/distributed.md`` for the commands.

Two ways to run N processes, both ending in detectron2's ``comm`` state (world, rank, local
process group) and in one ``main(args)`` call per process:

* ``train_net.py --num-gpus N [--num-machines M --machine-rank R --dist-url URL]``: detectron2's
  own ``launch`` spawns the workers (NCCL; detectron2 v0.6 needs CUDA for N > 1).
* ``torchrun --nproc_per_node N [--nnodes M ...] train_net.py ...`` (or any launcher that sets
  ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``,
  ``MASTER_PORT``): the process joins the launcher's process group (``env://``): NCCL when CUDA
  is available and the config's ``MODEL.DEVICE`` is not "cpu", else gloo. A launcher's
  ``WORLD_SIZE`` > 1 that cannot be joined (a variable missing or out of range, ``--num-gpus`` > 1
  as well) stops the process with an error naming it, so that N copies never each run as rank 0
  of a job of one.

What detectron2 v0.6 lacks for the second way, and what this module adds (each skipped where the
installed detectron2 has it): the local (per-machine) process group that ``comm.get_local_rank``
reads (made with detectron2's public ``comm.create_local_process_group`` where it exists, as on
its main branch; v0.6 has no public API for it, so this module sets ``comm``'s group itself); a
``DistributedDataParallel`` for a model on the CPU (detectron2's ``create_ddp_model`` passes
``device_ids=[local_rank]``, which DDP refuses for a CPU module) that tolerates parameters without
a gradient in an iteration (an empty clip, a frozen detector, a branch a config skips):
``project_ddp()``.
"""

import importlib
import logging
import os
import warnings
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Dict, Mapping, NamedTuple, Optional

import detectron2.engine.defaults as d2_defaults
import torch
import torch.distributed as dist
from detectron2.utils import comm

__all__ = [
    "LauncherEnv",
    "DistributedSetupError",
    "launcher_env",
    "launch",
    "create_ddp_model",
    "project_ddp",
]

logger = logging.getLogger(__name__)
# the module (detectron2.engine re-exports its function under the same name)
d2_launch = importlib.import_module("detectron2.engine.launch")

DEFAULT_TIMEOUT = timedelta(minutes=30)  # detectron2's launch.DEFAULT_TIMEOUT

# Variables a launcher sets for each process it starts (torchrun's names; ``env://``).
_REQUIRED = ("RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# Process counts other launchers set without torchrun's variables: N copies of the program.
_OTHER_LAUNCHERS = {"OMPI_COMM_WORLD_SIZE": "Open MPI's mpirun", "PMI_SIZE": "an MPI/PMI launcher"}


class DistributedSetupError(RuntimeError):
    """The launcher's environment does not describe a process group this process can join."""


class LauncherEnv(NamedTuple):
    """This process's place in a launcher-started job (all from the environment)."""

    rank: int  # global rank, 0 .. world_size - 1
    world_size: int
    local_rank: int  # rank on this machine, 0 .. local_world_size - 1
    local_world_size: int  # processes on this machine (the same on every machine)

    @property
    def num_machines(self) -> int:
        return self.world_size // self.local_world_size

    @property
    def machine_rank(self) -> int:
        return self.rank // self.local_world_size


def _int_var(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise DistributedSetupError(f"{name}={env[name]!r} is not an integer") from None


def launcher_env(env: Optional[Mapping[str, str]] = None) -> Optional[LauncherEnv]:
    """The job a launcher started this process in, or ``None`` for a single process.

    ``None`` when ``WORLD_SIZE`` is unset or 1 (and no MPI launcher says otherwise). With
    ``WORLD_SIZE`` > 1, every variable of ``env://`` must be there and consistent; ranks are
    laid out machine by machine (global rank = machine rank x LOCAL_WORLD_SIZE + LOCAL_RANK), as
    torchrun does. Raises ``DistributedSetupError`` naming what is missing or wrong.
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        for var, who in _OTHER_LAUNCHERS.items():
            if var in env and _int_var(env, var) > 1:
                raise DistributedSetupError(
                    f"{var}={env[var]}: this is one of {env[var]} copies started by {who}, but "
                    f"WORLD_SIZE/RANK/MASTER_ADDR are not set, so each copy would train alone as "
                    f"rank 0 of 1. Start the processes with torchrun (docs/distributed.md) or "
                    f"set {', '.join(('WORLD_SIZE',) + _REQUIRED)} for each"
                )
        return None
    world_size = _int_var(env, "WORLD_SIZE")
    if world_size < 1:
        raise DistributedSetupError(f"WORLD_SIZE={world_size} must be >= 1")
    if world_size == 1:
        return None
    missing = [v for v in _REQUIRED if v not in env]
    if missing:
        raise DistributedSetupError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: cannot join the process "
            f"group (torchrun sets all of {', '.join(_REQUIRED)}); refusing to run as a job of one"
        )
    rank, local_rank = _int_var(env, "RANK"), _int_var(env, "LOCAL_RANK")
    local_size = _int_var(env, "LOCAL_WORLD_SIZE")
    if not 0 <= rank < world_size:
        raise DistributedSetupError(f"RANK={rank} is not in [0, WORLD_SIZE={world_size})")
    if local_size < 1 or world_size % local_size:
        raise DistributedSetupError(
            f"LOCAL_WORLD_SIZE={local_size} does not divide WORLD_SIZE={world_size}: every machine "
            f"must run the same number of processes"
        )
    if not 0 <= local_rank < local_size or rank % local_size != local_rank:
        raise DistributedSetupError(
            f"LOCAL_RANK={local_rank} does not match RANK={rank} with LOCAL_WORLD_SIZE="
            f"{local_size}: ranks must be numbered machine by machine (as torchrun does)"
        )
    return LauncherEnv(rank, world_size, local_rank, local_size)


def _create_local_process_group(job: LauncherEnv) -> None:
    """The local (per-machine) process group that ``comm.get_local_rank`` reads.

    detectron2's public ``comm.create_local_process_group`` where the installed detectron2 has
    it (after v0.6). v0.6 glue, skipped when detectron2 provides that function: the same groups
    (every rank creates every group, as ``dist.new_group`` requires), set in ``comm``'s module
    state, for which v0.6 has no public API.
    """
    create = getattr(comm, "create_local_process_group", None)
    if create is not None:
        create(job.local_world_size)
        return
    if comm._LOCAL_PROCESS_GROUP is not None:
        raise DistributedSetupError("detectron2's local process group already exists")
    for m in range(job.num_machines):
        ranks = list(range(m * job.local_world_size, (m + 1) * job.local_world_size))
        group = dist.new_group(ranks)
        if m == job.machine_rank:
            comm._LOCAL_PROCESS_GROUP = group


def _forget_local_process_group() -> None:
    """After the process group is destroyed. v0.6 glue (see :func:`_create_local_process_group`):
    clears the group it set, so that a later join in the same process can set it again; skipped
    when detectron2 creates the group itself (its ``launch`` does not clear it either)."""
    if not hasattr(comm, "create_local_process_group"):
        comm._LOCAL_PROCESS_GROUP = None


def _join(job: LauncherEnv, timeout: timedelta, device: Optional[str] = None) -> None:
    on_cuda = torch.cuda.is_available() and not str(device or "cuda").startswith("cpu")
    backend = "nccl" if on_cuda else "gloo"
    if backend == "nccl":
        if job.local_rank >= torch.cuda.device_count():
            raise DistributedSetupError(
                f"LOCAL_RANK={job.local_rank} but this machine has {torch.cuda.device_count()} "
                f"CUDA devices: start at most that many processes per machine"
            )
        torch.cuda.set_device(job.local_rank)
    try:
        dist.init_process_group(backend, init_method="env://", timeout=timeout)
    except Exception as e:
        raise DistributedSetupError(
            f"rank {job.rank} of {job.world_size} could not join the {backend} process group at "
            f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}: {e}"
        ) from e
    _create_local_process_group(job)
    comm.synchronize()


def _d2_launch_needs_cuda() -> bool:
    """detectron2 v0.6's workers assert CUDA; later versions fall back to gloo on CPU."""
    import inspect

    return "gloo" not in inspect.getsource(d2_launch._distributed_worker).lower()


def launch(
    main_func: Callable,
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: Optional[str] = None,
    args=(),
    timeout: timedelta = DEFAULT_TIMEOUT,
    device: Optional[str] = None,
):
    """detectron2's ``launch`` (same arguments) that also serves launcher-started processes.

    Started by a launcher with ``WORLD_SIZE`` > 1 (``launcher_env``): joins its process group,
    calls ``main_func(*args)`` once in this process and leaves the group. ``--num-gpus`` /
    ``--num-machines`` > 1 as well is an error (the launcher already started the processes).
    Otherwise detectron2's ``launch`` runs (spawning ``num_gpus_per_machine`` workers when the
    world is larger than 1); on a machine without CUDA, with a detectron2 that needs it, a
    world > 1 is refused with the torchrun command to use instead. ``device``: the
    ``MODEL.DEVICE`` the processes compute on; "cpu" joins with gloo also where CUDA is
    available (several CPU processes on a machine with fewer GPUs than processes).
    """
    job = launcher_env()
    if job is None:
        if num_gpus_per_machine * num_machines > 1 and not torch.cuda.is_available():
            if _d2_launch_needs_cuda():
                raise DistributedSetupError(
                    f"--num-gpus {num_gpus_per_machine} needs CUDA (detectron2's launch starts "
                    f"NCCL workers) and this machine has none. To run "
                    f"{num_gpus_per_machine} processes on the CPU: torchrun --nproc_per_node "
                    f"{num_gpus_per_machine} train_net.py ... (docs/distributed.md)"
                )
        return d2_launch.launch(
            main_func, num_gpus_per_machine, num_machines=num_machines,
            machine_rank=machine_rank, dist_url=dist_url, args=args, timeout=timeout,
        )  # fmt: skip
    if num_gpus_per_machine > 1 or num_machines > 1:
        raise DistributedSetupError(
            f"started by a launcher as rank {job.rank} of WORLD_SIZE={job.world_size}, and "
            f"--num-gpus {num_gpus_per_machine} --num-machines {num_machines} asks detectron2 to "
            f"start processes too: use one of them (drop --num-gpus/--num-machines under torchrun)"
        )
    if dist.is_initialized():
        raise DistributedSetupError("a process group already exists in this process")
    _join(job, timeout, device)
    try:
        return main_func(*args)
    finally:
        dist.destroy_process_group()
        _forget_local_process_group()


def create_ddp_model(model: torch.nn.Module, **kwargs) -> torch.nn.Module:
    """detectron2's ``create_ddp_model`` (the model itself in a world of 1) for a model on any
    device: ``device_ids`` is ``[local rank]`` for a CUDA model and ``None`` for a CPU one, and
    ``find_unused_parameters`` defaults to True, so that a parameter that gets no gradient in an
    iteration on some rank (a clip without instances, a branch a config skips) does not stop DDP
    at the next step. Frozen parameters (``requires_grad=False``) are not synchronised at all.
    ``kwargs`` go to ``DistributedDataParallel`` and win over these defaults."""
    if comm.get_world_size() == 1:
        return model
    if "device_ids" not in kwargs:
        devices = {p.device.type for p in model.parameters()}
        kwargs["device_ids"] = [comm.get_local_rank()] if devices == {"cuda"} else None
    kwargs.setdefault("find_unused_parameters", True)
    with warnings.catch_warnings():
        # DefaultTrainer's broadcast_buffers=False (buffers are not synchronised): torch >= 2.12
        # deprecates the name, but its suggested replacement still syncs buffers at init
        warnings.filterwarnings(
            "ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning
        )
        return _d2_create_ddp_model(model, **kwargs)


_d2_create_ddp_model = d2_defaults.create_ddp_model


@contextmanager
def project_ddp(**defaults: Dict):
    """Within the block, detectron2's ``DefaultTrainer`` wraps its model with this module's
    ``create_ddp_model`` (``defaults``: more DDP arguments). For a trainer subclass::

        def __init__(self, cfg):
            with project_ddp():
                super().__init__(cfg)

    (``DefaultTrainer.__init__`` builds the model, its optimizer and loader, then calls
    ``create_ddp_model`` from ``detectron2.engine.defaults``; it has no hook to choose another.)
    """

    def wrap(model, **kwargs):
        return create_ddp_model(model, **{**defaults, **kwargs})

    saved = d2_defaults.create_ddp_model
    d2_defaults.create_ddp_model = wrap
    try:
        yield
    finally:
        d2_defaults.create_ddp_model = saved
