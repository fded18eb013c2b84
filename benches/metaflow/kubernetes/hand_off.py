"""256 MiB of random float64 (a numpy array) handed from one Kubernetes step to the next."""
import numpy as np
from metaflow import FlowSpec, kubernetes, step

N = 256 * 1024 * 1024 // 8


class HandOff(FlowSpec):
    @kubernetes(cpu=0.05, memory=2048)
    @step
    def start(self):
        self.data = np.random.default_rng(0).random(N)
        self.next(self.end)

    @kubernetes(cpu=0.05, memory=2048)
    @step
    def end(self):
        assert len(self.data) == N and 0.49 < float(self.data.mean()) < 0.51


if __name__ == "__main__":
    HandOff()
