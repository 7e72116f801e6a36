"""Options and helpers shared by the CLI command modules."""

from __future__ import annotations

import typer

from circuitdb.store.base import DEFAULT_STORE, DEFAULT_STORE_ENV

STORE_OPTION = typer.Option(
    None, "--store", "-s", envvar=DEFAULT_STORE_ENV,
    help=f"Store URI: embedded:PATH, neo4j://HOST:7687 or bolt://HOST:7687 [default: {DEFAULT_STORE}]",
)


def open_cli_store(uri: str | None):
    """The store at ``uri``, connected (so a bad URI or an unopenable store fails before any compute)."""
    from circuitdb.store.base import open_store

    return open_store(uri)


def parse_params(items: list[str] | None) -> dict:
    """``k=v`` pairs → dict; values parsed as JSON when they parse (numbers, lists, true/false), else strings."""
    import json

    from circuitdb.errors import ConfigError

    import math

    def finite(x: object) -> bool:
        if isinstance(x, float):
            return math.isfinite(x)
        return all(map(finite, x)) if isinstance(x, list) else True

    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--param {item!r} is not of the form key=value")
        k, v = item.split("=", 1)
        if not k.strip():
            raise ConfigError(f"--param {item!r} has an empty key")
        try:
            val = json.loads(v)
        except json.JSONDecodeError:
            val = v
        if not finite(val) or (isinstance(val, str) and val.strip().lower() in ("nan", "inf", "-inf", "infinity")):
            raise ConfigError(f"--param {k.strip()}={v}: NaN and infinity are not accepted; give a finite number")
        out[k.strip()] = val
    return out
