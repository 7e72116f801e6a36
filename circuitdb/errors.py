"""The one error tree of circuitdb.

Every error the library raises on purpose is a :class:`CircuitDBError`. Messages name the bad value and, where
there is a closed set, the valid options. Driver / backend errors are wrapped with ``raise ... from e``.
"""

from __future__ import annotations


class CircuitDBError(Exception):
    """Base class of every error circuitdb raises on purpose."""


class ConfigError(CircuitDBError, ValueError):
    """Bad input from the user: a config value, a name, a file, a dataset, a prompt."""


class GraphValidationError(ConfigError):
    """An AttributionGraph failed validation (NaN weights, dangling edges, duplicate keys, unknown kinds)."""


class AttributionError(CircuitDBError):
    """The attribution engine could not compute a graph (shape mismatch, NaN activations, ...)."""


class StoreError(CircuitDBError):
    """A graph store failed: connection, write, read, or a missing graph."""


class GraphNotFoundError(StoreError, KeyError):
    """The store holds no graph with that id."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "graph not found"


class QueryError(CircuitDBError):
    """A query could not run: unknown name, missing parameter, write refused, backend error."""


def one_of(value: object, options: "list[str] | tuple[str, ...] | set[str]", what: str) -> str:
    """Message helper: ``what`` must be one of ``options``."""
    opts = ", ".join(sorted(map(str, options)))
    return f"unknown {what} {value!r}; valid options: {opts}"
