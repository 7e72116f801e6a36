"""The engine's own answer to "does this statement only read?" on the embedded store: its physical plan.

Ladybug 0.22 has no read-only handle that stops files being written (a ``Database(read_only=True)`` and a ``BEGIN
TRANSACTION READ ONLY`` both still run ``COPY (…) TO 'f'`` and ``EXPORT DATABASE``, and a lone ``COMMIT`` ends the
READ ONLY transaction), and its Python API does not expose a prepared statement's type or read-only flag (the C++
``PreparedStatement::isReadOnly`` exists in the extension module but is not bound; docs/design.md). What it
does expose is ``EXPLAIN <statement>``: the statement parsed, bound and planned — not run — as a box per physical
operator (``COPY_TO[3]``, ``EXPORT_DATABASE[1]``, ``TRANSACTION[0]``, ``INSERT[1]``, ``SET_PROPERTY[4]``, …).
A user statement runs only if every operator of its plan is one of :data:`READ_OPERATORS` and every table function
it calls is one of :data:`READ_TABLE_FUNCTIONS`; anything else, or a plan with no operator found, is refused (an
allow-list: an operator this module does not know is refused, naming it).

What EXPLAIN itself does: nothing is written for any write or file statement tried (tests/store/
test_adversarial_queries.py), except that planning ``EXPORT DATABASE 'd'`` creates the empty directory ``d`` (the
operator prepares its target). The lexical check (:mod:`.readonly`) runs first and refuses EXPORT before that.
"""

from __future__ import annotations

import re

from circuitdb.errors import QueryError

#: physical operators a read plan is made of (Ladybug 0.22; seen in the plans of every library query and test)
READ_OPERATORS = frozenset({
    "RESULT_COLLECTOR", "PROJECTION", "FILTER", "FLATTEN", "LIMIT", "SKIP", "MULTIPLICITY_REDUCER", "UNWIND",
    "SCAN_NODE_TABLE", "SCAN_REL_TABLE", "PRIMARY_KEY_SCAN_NODE_TABLE", "QUERY_PRIMARY_KEY_LOOKUP", "INDEX_LOOKUP",
    "COUNT_REL_TABLE", "EMPTY_RESULT",
    "AGGREGATE", "AGGREGATE_FINALIZE", "AGGREGATE_SCAN", "ORDER_BY", "ORDER_BY_MERGE", "ORDER_BY_SCAN", "TOP_K",
    "TOP_K_SCAN", "HASH_JOIN_BUILD", "HASH_JOIN_PROBE", "INTERSECT_BUILD", "INTERSECT", "CROSS_PRODUCT",
    "UNION_ALL_SCAN", "RECURSIVE_EXTEND", "PATH_PROPERTY_PROBE", "SEMI_MASKER", "DUMMY_SINK",
    "TABLE_FUNCTION_CALL",
})
#: table functions a read may call (``READ_FTABLE`` is the engine's own row source for literals and parameters)
READ_TABLE_FUNCTIONS = frozenset({
    "READ_FTABLE", "SHOW_TABLES", "TABLE_INFO", "SHOW_CONNECTION", "CURRENT_SETTING", "DB_VERSION",
})
_OPERATOR = re.compile(r"\b([A-Z][A-Z0-9_]*)\[\d+\]")
_FUNCTION = re.compile(r"Function: ([A-Za-z0-9_]+)")

EXPLAIN = "EXPLAIN "


def plan_refusal(plan: str) -> str | None:
    """Why a statement whose ``EXPLAIN`` output is ``plan`` does not only read, or None."""
    ops = set(_OPERATOR.findall(plan))
    if not ops:
        return "the engine's plan names no operator (cannot tell what it does)"
    bad = sorted(ops - READ_OPERATORS)
    if bad:
        return f"the engine plans it with {', '.join(bad)} (a read uses only {_short(READ_OPERATORS)})"
    funcs = sorted(set(_FUNCTION.findall(plan)) - READ_TABLE_FUNCTIONS)
    if funcs:
        allowed = ", ".join(sorted(READ_TABLE_FUNCTIONS))
        return f"it calls the table function(s) {', '.join(funcs)} (reads may call {allowed})"
    return None


def assert_plan_reads(plan: str, cypher: str) -> None:
    """Raise QueryError naming the operator(s) when ``plan`` (the EXPLAIN text of ``cypher``) does more than read."""
    reason = plan_refusal(plan)
    if reason is not None:
        first = " ".join(cypher.split())[:80]
        raise QueryError(f"refusing a query that does not only read ({reason}): {first!r}; pass write=True to "
                         "allow writes")


def _short(names: frozenset[str]) -> str:
    shown = sorted(names)
    return ", ".join(shown[:6]) + f", … ({len(shown)} operators)"
