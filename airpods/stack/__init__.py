"""The stack object (core.py) and what it does to a project's services."""

from airpods.stack.core import Stack

__all__ = ["Stack"]
