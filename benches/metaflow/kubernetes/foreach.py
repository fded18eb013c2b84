"""A foreach over `--items` tasks, a join and an end, every step on Kubernetes: per-task overhead.
(Metaflow's end step cannot be the join.)"""
from metaflow import FlowSpec, Parameter, kubernetes, step


class Foreach(FlowSpec):
    items = Parameter("items", default=50, type=int)

    @kubernetes(cpu=0.05, memory=256)
    @step
    def start(self):
        self.numbers = list(range(self.items))
        self.next(self.work, foreach="numbers")

    @kubernetes(cpu=0.05, memory=256)
    @step
    def work(self):
        self.y = self.input * 2
        self.next(self.join)

    @kubernetes(cpu=0.05, memory=256)
    @step
    def join(self, inputs):
        self.total = sum(i.y for i in inputs)
        self.next(self.end)

    @kubernetes(cpu=0.05, memory=256)
    @step
    def end(self):
        assert self.total == sum(2 * i for i in range(self.items))


if __name__ == "__main__":
    Foreach()
