"""Several processes, one report: the ranks torchrun starts, and how they meet.

``torchrun --standalone --nproc_per_node N -m groundreport build ...`` (or
``python -m torch.distributed.run``) sets RANK, LOCAL_RANK and WORLD_SIZE; without them the
run is one process and nothing here starts. Each rank explains ``pairs[rank::world_size]`` on
its own device and writes its pairs into the shared report/ (every file atomic, entry.json
last); rank 0 waits for the others, merges and renders.

The ranks meet through a gloo process group (torch.distributed), not through files:
torchrun already gives every rank the rendezvous address; gloo runs on CPU beside any GPU
(the ranks share no tensors, only a few small Python objects); and a rank that dies closes
its connection, so rank 0 fails at once instead of polling for a file that never comes.
A rank that hangs is caught by ``monitored_barrier``, which names the missing ranks after
``GROUNDREPORT_RANK_TIMEOUT`` seconds (default 1800).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from .errors import UserError

TIMEOUT_ENV = "GROUNDREPORT_RANK_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.world_size > 1

    def shard(self, items: list) -> list[tuple[int, object]]:
        """This rank's ``(index, item)`` pairs: every world_size-th item from its rank on."""
        return list(enumerate(items))[self.rank::self.world_size]

    def device(self, requested: str) -> str:
        """``auto``/``cuda`` become this rank's own GPU (cuda:LOCAL_RANK) when there are several ranks."""
        import torch

        if self.several and requested in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return requested


def ranks_from_env(env=os.environ) -> Ranks:
    """The ranks torchrun describes in the environment; one process when it says nothing."""
    if "WORLD_SIZE" not in env:
        return Ranks()
    try:
        ranks = Ranks(int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"])), int(env["WORLD_SIZE"]))
    except (KeyError, ValueError):
        raise UserError("WORLD_SIZE is set but RANK/LOCAL_RANK are missing or not numbers: start several "
                        "processes with torchrun (or python -m torch.distributed.run)") from None
    if not (ranks.world_size >= 1 and 0 <= ranks.rank < ranks.world_size):
        raise UserError(f"RANK {ranks.rank} is outside WORLD_SIZE {ranks.world_size}")
    return ranks


def timeout_s(env=os.environ) -> float:
    raw = env.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if value <= 0:
        raise UserError(f"{TIMEOUT_ENV} must be a positive number of seconds, not {raw!r}")
    return value


class Group:
    """The ranks' meeting points; every method is a no-op for one process."""

    def __init__(self, ranks: Ranks, timeout: float):
        self.ranks = ranks
        self.timeout = timeout

    def wait(self, what: str) -> None:
        """Every rank reaches this point; a rank that died or hangs is a one-line error on the others."""
        if not self.ranks.several:
            return
        import torch.distributed as dist

        try:
            dist.monitored_barrier(timeout=timedelta(seconds=self.timeout), wait_all_ranks=True)
        except RuntimeError as e:  # gloo: a closed connection (a rank died) or the timeout (a rank hangs)
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise UserError(f"rank {self.ranks.rank} of {self.ranks.world_size}: another rank died or did not "
                            f"reach '{what}' in {self.timeout:.0f} s ({TIMEOUT_ENV}): {first}; finished pairs "
                            "are kept, rerun the same command to resume") from None

    def gather(self, obj) -> list | None:
        """``obj`` of every rank, in rank order, on rank 0; None on the others."""
        if not self.ranks.several:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.ranks.world_size if self.ranks.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out


@contextmanager
def group(ranks: Ranks):
    """A gloo process group for the ranks (nothing for one process), torn down on the way out."""
    if not ranks.several:
        yield Group(ranks, DEFAULT_TIMEOUT_S)
        return
    import torch.distributed as dist

    timeout = timeout_s()
    dist.init_process_group("gloo", rank=ranks.rank, world_size=ranks.world_size,
                            timeout=timedelta(seconds=timeout))
    try:
        yield Group(ranks, timeout)
        dist.barrier()  # no rank tears the group down while another is still in a collective
    finally:
        dist.destroy_process_group()
