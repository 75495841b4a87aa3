"""Exceptions that say what is wrong and how to fix it."""

from __future__ import annotations


class FusionrecError(Exception):
    """Base class of every error fusionrec raises on purpose."""


class DataError(FusionrecError, ValueError):
    """Input data is malformed: a missing column, an unknown id, an empty file.

    The message names the file (and row where there is one) and the fix.
    """


class ConfigError(FusionrecError, ValueError):
    """A configuration value or command-line option is invalid."""


class NotFittedError(FusionrecError, RuntimeError):
    """A model was used before ``fit`` was called."""


class UnknownNameError(FusionrecError, KeyError):
    """An unknown model, dataset or metric name; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


def unknown_name(kind: str, got: str, known: list[str] | tuple[str, ...]) -> UnknownNameError:
    return UnknownNameError(f"unknown {kind} {got!r}; known {kind}s: {', '.join(sorted(known))}")
