"""A job of about a minute on a pool of three one-CPU members: 180 tasks of one
second each, spread over the pool. Prints `sum N` (the tasks' results) at the end."""

import time

import ray

ray.init()


@ray.remote(num_cpus=1)
def work(i):
    time.sleep(1.0)
    return i


print(f"sum {sum(ray.get([work.remote(i) for i in range(180)]))}", flush=True)
