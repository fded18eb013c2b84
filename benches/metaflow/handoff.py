"""A 256 MiB float64 array handed from one step to the next (HANDOFF_MIB=0 for the baseline)."""
import os

import numpy as np
from metaflow import FlowSpec, step

N = int(os.environ.get("HANDOFF_MIB", "256")) * 1024 * 1024 // 8


class Handoff(FlowSpec):
    @step
    def start(self):
        # Random doubles (incompressible, like real measurements), cheap to make on both sides.
        self.data = np.random.default_rng(0).random(N)
        self.next(self.consume)

    @step
    def consume(self):
        self.total = float(self.data.sum())
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Handoff()
