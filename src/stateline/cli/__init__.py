"""The ``stateline`` command line: a thin client of the public API.

Heavy imports happen inside the commands, so ``stateline --help`` answers at once.
"""

from ._main import main as main

__all__ = ["main"]
