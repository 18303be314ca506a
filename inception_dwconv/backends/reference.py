"""The eager split/conv/cat backend (the oracle). Runs wherever torch.nn.functional.conv2d runs."""
from ..reference import backward, forward  # noqa: F401

DEVICE_TYPES = ("cpu", "cuda")


def is_available() -> bool:
    return True


def why_unavailable() -> str:
    return ""
