"""Five steps in a line, every one on Kubernetes: the cost of a step's pod and hand-over."""
from metaflow import FlowSpec, kubernetes, step


class Linear(FlowSpec):
    @kubernetes(cpu=0.05, memory=256)
    @step
    def start(self):
        self.x = 0
        self.next(self.one)

    @kubernetes(cpu=0.05, memory=256)
    @step
    def one(self):
        self.x += 1
        self.next(self.two)

    @kubernetes(cpu=0.05, memory=256)
    @step
    def two(self):
        self.x += 1
        self.next(self.three)

    @kubernetes(cpu=0.05, memory=256)
    @step
    def three(self):
        self.x += 1
        self.next(self.end)

    @kubernetes(cpu=0.05, memory=256)
    @step
    def end(self):
        assert self.x == 3


if __name__ == "__main__":
    Linear()
