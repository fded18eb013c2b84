"""256 MiB of float64 handed from one step to the next (HANDOFF_MIB=0 for the baseline), shaped
as the kubestep case is (HANDOFF_SHAPE: bare, struct, tuple, ndarray,
ndarray_struct, table), random or the sequence 0, 1, 2, ...
(HANDOFF_DATA: random, sequence)."""
import os
import time

import numpy as np
import pandas as pd
from metaflow import FlowSpec, step

N = int(os.environ.get("HANDOFF_MIB", "256")) * 1024 * 1024 // 8
SHAPE = os.environ.get("HANDOFF_SHAPE", "bare")


def mark(name):
    """The wall clock under `name` in the run's marks directory, as the kubestep flow writes it."""
    marks = os.environ.get("HANDOFF_MARKS")
    if marks:
        with open(os.path.join(marks, name), "w") as f:
            f.write(str(time.time_ns()))


def values():
    if os.environ.get("HANDOFF_DATA") == "sequence":
        return np.arange(N, dtype=np.float64)
    # Random doubles (incompressible, like real measurements), cheap to make on both sides.
    return np.random.default_rng(0).random(N)


class Handoff(FlowSpec):
    @step
    def start(self):
        if SHAPE == "struct":
            self.data = {"name": "bench", "epoch": 3, "weights": values()}
        elif SHAPE == "tuple":
            self.data = (1.5, values())
        elif SHAPE == "ndarray":
            self.data = values().reshape(-1, 1024)
        elif SHAPE == "ndarray_struct":
            self.data = {"name": "bench", "weights": values().reshape(-1, 1024)}
        elif SHAPE == "table":
            v = values()
            rows = len(v) // 4
            self.data = pd.DataFrame(
                {
                    "id": np.arange(rows, dtype=np.int64),
                    "x": v[rows : 2 * rows],
                    "y": v[2 * rows : 3 * rows],
                    "z": v[3 * rows :],
                }
            )
        else:
            self.data = values()
        mark("produced")
        self.next(self.consume)

    @step
    def consume(self):
        self.data  # Metaflow loads an artifact when it is first touched.
        mark("consumed")
        if SHAPE == "struct":
            m = self.data
            self.total = float(m["weights"].sum()) + m["epoch"] + len(m["name"])
        elif SHAPE == "tuple":
            self.total = self.data[0] + float(self.data[1].sum())
        elif SHAPE == "ndarray_struct":
            self.total = float(self.data["weights"].sum()) + len(self.data["name"])
        elif SHAPE == "table":
            self.total = float(self.data["x"].sum()) + len(self.data)
        else:
            self.total = float(self.data.sum())
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Handoff()
