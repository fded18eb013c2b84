"""A foreach over 100 items, then a join: per-task overhead and fan-out."""
from metaflow import FlowSpec, step


class Foreach100(FlowSpec):
    @step
    def start(self):
        self.items = list(range(100))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.y = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.y for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.total == sum(i * i for i in range(100))


if __name__ == "__main__":
    Foreach100()
