"""The shared write detector for ``GraphStore.run``: refuse Cypher that writes unless the caller said ``write=True``.

It is a lexical check (string literals, comments and backquoted names are blanked first, so ``'CREATE'`` in a
string or a property called ``n.set`` do not count) and deliberately conservative: a false "writes" only asks the
caller to pass ``write=True``. Stores add their own wall where they can (Neo4j runs reads in READ-access sessions).
"""

from __future__ import annotations

import re

from circuitdb.errors import QueryError

#: clause keywords that change data or schema (Neo4j and Ladybug/Kuzu)
WRITE_KEYWORDS = frozenset({
    "CREATE", "MERGE", "DELETE", "DETACH", "SET", "REMOVE", "DROP", "FOREACH", "LOAD", "COPY", "ALTER", "INSTALL",
    "IMPORT", "EXPORT", "ATTACH", "GRANT", "DENY", "REVOKE",
})
#: administration / transaction commands, counted only as a statement's first word (``RETURN 1 AS start`` reads)
ADMIN_KEYWORDS = frozenset({"START", "STOP", "RENAME", "TERMINATE", "ENABLE", "CHECKPOINT", "BEGIN", "COMMIT",
                            "ROLLBACK"})
#: words in a procedure name that mark a write (``CALL apoc.create.node``, ``CALL db.createLabel``, ...)
WRITE_PROC_WORDS = frozenset({"create", "merge", "delete", "remove", "drop", "write", "set", "import", "export",
                              "load", "refactor", "periodic", "clear", "kill", "install", "attach", "copy"})
_NAME_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

_STRIP = re.compile(
    r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`(?:[^`]|``)*`|//[^\n]*|/\*.*?\*/""",
    re.DOTALL,
)
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CALL = re.compile(r"\bCALL\s+([A-Za-z_][\w.]*)\s*\(", re.IGNORECASE)
_IN_TX = re.compile(r"\bIN\s+(?:\d+\s+)?(?:CONCURRENT\s+)?TRANSACTIONS\b", re.IGNORECASE)


def _blank(cypher: str) -> str:
    """Replace literals, comments and backquoted names by spaces of the same length."""
    return _STRIP.sub(lambda m: " " * len(m.group(0)), cypher)


def write_reason(cypher: str) -> str | None:
    """Why ``cypher`` looks like a write (the keyword or procedure), or None if it reads only."""
    text = _blank(cypher)
    for stmt in text.split(";"):
        first = _TOKEN.search(stmt)
        if first and first.group(0).upper() in ADMIN_KEYWORDS:
            return f"command {first.group(0).upper()}"
    for m in _TOKEN.finditer(text):
        word = m.group(0).upper()
        if word not in WRITE_KEYWORDS:
            continue
        before = text[:m.start()].rstrip()
        after = text[m.end():].lstrip()
        if before.endswith((".", ":", "$")) or after.startswith(":") or re.search(r"\bAS$", before, re.I):
            continue  # a property (n.set), a label (:Set), a parameter ($set), a map key ({set: 1}), an alias
        return f"keyword {word}"
    for m in _CALL.finditer(text):  # words of the name split at dots, underscores and camelCase humps
        if any(w.lower() in WRITE_PROC_WORDS for w in _NAME_WORD.findall(m.group(1))):
            return f"procedure {m.group(1)}"
    if _IN_TX.search(text):
        return "CALL { ... } IN TRANSACTIONS"
    return None


def is_write_query(cypher: str) -> bool:
    """True if ``cypher`` (may) write data or schema."""
    return write_reason(cypher) is not None


def assert_read_only(cypher: str) -> None:
    """Raise QueryError if ``cypher`` writes; the message names what was found and how to allow it."""
    reason = write_reason(cypher)
    if reason is not None:
        first = " ".join(cypher.split())[:80]
        raise QueryError(f"refusing a query that writes ({reason}): {first!r}; pass write=True to allow writes")
