"""Shared by the GPU scripts: print a line and, when a path is given, append it to a file at once
(so a run stopped by its time limit keeps what it printed)."""


class Tee:
    def __init__(self, path=None):
        self.path = path
        if path:
            open(path, "w").close()

    def __call__(self, line: str) -> None:
        print(line, flush=True)
        if self.path:
            with open(self.path, "a") as f:
                f.write(line + "\n")
