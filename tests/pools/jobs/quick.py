"""A short job: six half-second Ray tasks of one CPU. Prints `sum 15`."""

import time

import ray

ray.init()


@ray.remote(num_cpus=1, scheduling_strategy="SPREAD")
def work(i):
    time.sleep(0.5)
    return i


print(f"sum {sum(ray.get([work.remote(i) for i in range(6)]))}", flush=True)
