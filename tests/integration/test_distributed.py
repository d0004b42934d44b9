"""DistributedDataParallel with soft ops: averaged gradients equal single-process gradients.

Two processes (gloo backend, localhost, a free port) each run a small model on half of a global
batch under ``torch.nn.parallel.DistributedDataParallel``; the model uses explicit soft ops
(``softtorch.relu`` / ``sort`` / ``topk`` / ``quantile``) and a block of plain torch code inside
``softtorch.soft_mode`` (``torch.sort``, ``x > y``, ``torch.where``, ``F.relu``, ``argmax`` +
``gather``). DDP averages the gradients over ranks; since every loss term is a per-sample mean,
that average equals the gradient of the same loss on the whole batch in one process (float64,
tight tolerance).
"""

from __future__ import annotations

import os
import socket
import tempfile

import pytest
import torch
import torch.nn.functional as F

import softtorch as st

dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with the gloo backend is not available", allow_module_level=True)

WORLD = 2
BATCH = 8  # global batch, split evenly over the ranks
D_IN, D_HID = 5, 6


class SoftNet(torch.nn.Module):
    """Linear -> explicit soft ops, then unmodified torch code under soft_mode."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(D_IN, D_HID)
        self.head = torch.nn.Linear(D_HID, 1)
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = st.relu(self.lin(x), softness=0.2)
        s = st.sort(h, dim=-1, method=self.method, softness=0.3).values
        top = st.topk(h, 2, dim=-1, method=self.method, softness=0.3).values
        q = st.quantile(h, 0.5, dim=-1, softness=0.3)
        with st.soft_mode("smooth", softness=0.2, method=self.method):
            hs = torch.sort(h, dim=-1).values
            mask = (h > hs.mean(-1, keepdim=True)).float()
            gated = torch.where(h > 0, h, 0.1 * h)
            picked = torch.gather(h, -1, h.argmax(-1, keepdim=True)).squeeze(-1)
            act = F.relu(self.head(gated * mask)).squeeze(-1)
        return s[:, -1] + top.sum(-1) + q + picked + act + (hs * mask).mean(-1)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return (
        torch.randn(BATCH, D_IN, generator=g, dtype=torch.float64),
        torch.randn(BATCH, generator=g, dtype=torch.float64),
    )


def _model(method: str) -> SoftNet:
    torch.manual_seed(7)
    return SoftNet(method).double()


def _loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (model(x) - y).square().mean()


def _worker(rank: int, port: int, method: str, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = torch.nn.parallel.DistributedDataParallel(_model(method))
        x, y = _data()
        part = BATCH // WORLD
        sl = slice(rank * part, (rank + 1) * part)
        _loss(model, x[sl], y[sl]).backward()
        grads = {k: p.grad.detach().clone() for k, p in model.module.named_parameters()}
        torch.save(grads, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("method", ["neuralsort", "fast_soft_sort"])
def test_ddp_gradients_match_single_process(method: str, tmp_path: object) -> None:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_worker, args=(_free_port(), method, out_dir), nprocs=WORLD, join=True)
        per_rank = [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(WORLD)]

    single = _model(method)
    x, y = _data()
    _loss(single, x, y).backward()
    for name, p in single.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
        assert p.grad.abs().max() > 0, f"{name}: no gradient reached it"
        for r, grads in enumerate(per_rank):
            torch.testing.assert_close(
                grads[name], p.grad, rtol=1e-10, atol=1e-12, msg=f"{name} on rank {r}"
            )
