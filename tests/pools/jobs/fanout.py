"""Batch inference fanned out over a Ray pool, and the same batch in one process.

A small fixed network (weights from a seed) scores BATCHES batches of inputs (also
from the seed). On the pool each batch is a Ray task of one CPU; Ray retries a batch
whose node dies on another. The driver prints `batch N done` as results arrive and
then `result <sha256 of all scores>`, which `python fanout.py --local` computes in one
process.
"""

import hashlib
import sys
import time

import numpy as np

SEED, BATCHES, ROWS, DIM, HIDDEN = 11, 24, 2_000, 32, 64


def weights():
    rng = np.random.default_rng(SEED)
    return rng.normal(size=(DIM, HIDDEN)), rng.normal(size=HIDDEN)


def score(i):
    w1, w2 = weights()
    x = np.random.default_rng([SEED, i]).normal(size=(ROWS, DIM))
    return np.round(np.tanh(x @ w1) @ w2, 9)


def digest(scores):
    h = hashlib.sha256()
    for s in scores:
        h.update(s.tobytes())
    return h.hexdigest()


def local():
    print(f"result {digest([score(i) for i in range(BATCHES)])}", flush=True)


def pooled():
    import ray

    ray.init()

    @ray.remote(num_cpus=1, max_retries=5, scheduling_strategy="SPREAD")
    def batch(i):
        time.sleep(1.0)  # a model's worth of time per batch
        return score(i)

    refs = [batch.remote(i) for i in range(BATCHES)]
    index = {r: i for i, r in enumerate(refs)}
    results, pending = {}, list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        i = index[done[0]]
        results[i] = ray.get(done[0])
        print(f"batch {i} done", flush=True)
    print(f"result {digest([results[i] for i in range(BATCHES)])}", flush=True)


if __name__ == "__main__":
    local() if "--local" in sys.argv else pooled()
