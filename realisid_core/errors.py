"""One error type for bad user input, worded so an artist knows what to change."""


class RealisIDInputError(ValueError):
    """Bad input to a RealisID node: names the node, the input and the fix."""

    def __init__(self, node: str, input_name: str, problem: str, fix: str):
        self.node = node
        self.input_name = input_name
        self.problem = problem
        self.fix = fix
        super().__init__(f"{node}: input '{input_name}': {problem}. Fix: {fix}")
