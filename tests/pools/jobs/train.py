"""Data-parallel training with PyTorch on a Ray pool, and the same training in one
process.

A linear model (`torch.nn.Linear`, float64) is fitted by full-batch gradient descent
to a data set generated from a fixed seed. On the pool (`python train.py`), the data
set is cut into one shard per worker; each step, every shard's gradient is computed
with autograd by a Ray task (one CPU each, spread over the pool's nodes) and the
driver sums them and takes the step, which is exactly the full-batch step. Alone
(`python train.py --local`) the same shards' gradients are computed in this process.
Both print the loss curve, one `step N loss X` line per step; they agree up to the
order of floating-point sums. On the pool the curve is also the job's output file
`loss.csv` (in `$EMC_OUTPUT_DIR`, which the client downloads from the gateway).
"""

import os
import sys

import numpy as np
import torch

SEED, ROWS, DIM, SHARDS, STEPS, RATE = 7, 30_000, 16, 3, 40, 0.1


def shard(i):
    """Shard i of the data set, generated from the seed alone."""
    rng = np.random.default_rng([SEED, i])
    x = rng.normal(size=(ROWS // SHARDS, DIM))
    w_true = np.random.default_rng(SEED).normal(size=DIM)
    y = x @ w_true + 0.1 * rng.normal(size=ROWS // SHARDS)
    return torch.from_numpy(x), torch.from_numpy(y)


def model(weights):
    m = torch.nn.Linear(DIM, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(weights).reshape(1, DIM))
    return m


def grad_and_loss(i, weights):
    """The shard's summed squared error and its gradient, by autograd."""
    x, y = shard(i)
    m = model(weights)
    loss = ((m(x).squeeze(1) - y) ** 2).sum() / 2
    loss.backward()
    return m.weight.grad.reshape(DIM).numpy().copy(), float(loss) * 2, len(y)


def step(parts, w):
    g = sum(p[0] for p in parts)
    n = sum(p[2] for p in parts)
    return w - RATE * g / n, sum(p[1] for p in parts) / n


def local():
    w = np.zeros(DIM)
    for s in range(STEPS):
        w, loss = step([grad_and_loss(i, w) for i in range(SHARDS)], w)
        print(f"step {s} loss {loss:.12e}", flush=True)


def pooled():
    import ray

    ray.init()

    @ray.remote(num_cpus=1, scheduling_strategy="SPREAD")
    def part(i, w):
        import time

        torch.set_num_threads(1)
        out = grad_and_loss(i, w)
        time.sleep(0.2)  # enough work per task for every node to hold one
        return out, ray.get_runtime_context().get_node_id()

    w = np.zeros(DIM)
    nodes, curve = set(), []
    for s in range(STEPS):
        got = ray.get([part.remote(i, w) for i in range(SHARDS)])
        nodes.update(n for _, n in got)
        w, loss = step([g for g, _ in got], w)
        curve.append(f"{s},{loss:.12e}")
        print(f"step {s} loss {loss:.12e}", flush=True)
    with open(os.path.join(os.environ["EMC_OUTPUT_DIR"], "loss.csv"), "w") as f:
        f.write("\n".join(curve) + "\n")
    print(f"nodes {len(nodes)} torch {torch.__version__}", flush=True)


if __name__ == "__main__":
    local() if "--local" in sys.argv else pooled()
