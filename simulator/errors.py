"""The one error a user's input can cause, in a module every other one may import.

``ConfigError`` carries (dotted key, message) pairs; the CLI prints one line each and exits 2.
It lives here, below everything, so that the cluster, the engines and the protocols can refuse
bad input without importing the config models (which import them).
"""

from __future__ import annotations


class ConfigError(Exception):
    """One or more problems with a config; ``problems`` holds (dotted key, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{key}: {message}" if key else message for key, message in self.problems]

    def __reduce__(self):
        """Pickled with its problems, so one raised in a pool's worker arrives whole."""
        return (type(self), (self.problems,))
