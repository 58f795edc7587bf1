"""The test engine now lives in `components.engine` (a lifecycle engine shared with `make demo`)."""

from components.engine import Engine, UnknownResourceType

__all__ = ["Engine", "UnknownResourceType"]
