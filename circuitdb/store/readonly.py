"""The shared write detector for ``GraphStore.run``: refuse Cypher that writes unless the caller said ``write=True``.

It is a lexical check (string literals, comments and backquoted names are blanked first, so ``'CREATE'`` in a
string or a property called ``n.set`` do not count) and deliberately conservative: a false "writes" only asks the
caller to pass ``write=True``. It is the fast first answer, not the defence: the embedded store prepares the text
(Ladybug refuses to prepare more than one statement, before anything runs) and runs it inside a READ ONLY
transaction the engine enforces; Neo4j runs reads in READ-access sessions. The check is what refuses what the
engine would allow inside a read-only transaction: transaction control (``COMMIT`` ends it), ``COPY … TO`` and
``EXPORT DATABASE`` (they write files), and any text that two comment readings split differently (``/* **/``).
"""

from __future__ import annotations

import re

from circuitdb.errors import QueryError

#: clause keywords that change data or schema (Neo4j and Ladybug/Kuzu)
WRITE_KEYWORDS = frozenset({
    "CREATE", "MERGE", "DELETE", "DETACH", "SET", "REMOVE", "DROP", "FOREACH", "LOAD", "COPY", "ALTER", "INSTALL",
    "IMPORT", "EXPORT", "ATTACH", "GRANT", "DENY", "REVOKE", "COMMIT", "ROLLBACK", "BEGIN", "CHECKPOINT",
    "USE", "TRANSACTION",
})
#: administration / transaction commands, counted only as a statement's first word (``RETURN 1 AS start`` reads)
ADMIN_KEYWORDS = frozenset({"START", "STOP", "RENAME", "TERMINATE", "ENABLE", "CHECKPOINT", "BEGIN", "COMMIT",
                            "ROLLBACK", "USE", "DETACH"})
#: words in a procedure name that mark a write (``CALL apoc.create.node``, ``CALL db.createLabel``, ...)
WRITE_PROC_WORDS = frozenset({"create", "merge", "delete", "remove", "drop", "write", "set", "import", "export",
                              "load", "refactor", "periodic", "clear", "kill", "install", "attach", "copy"})
_NAME_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CALL = re.compile(r"\bCALL\s+([A-Za-z_][\w.]*)\s*\(", re.IGNORECASE)
_IN_TX = re.compile(r"\bIN\s+(?:\d+\s+)?(?:CONCURRENT\s+)?TRANSACTIONS\b", re.IGNORECASE)


class _Unclosed(Exception):
    pass


def _blank(cypher: str, *, engine_comments: bool = False) -> str:
    """Replace literals, comments and backquoted names by spaces of the same length (newlines kept).

    Two readings of a block comment: the plain one (it ends at the first ``*/``, as Neo4j reads it) and, with
    ``engine_comments``, openCypher's grammar as Ladybug 0.22 lexes it (``'/*' (~'*' | '*' ~'/')* '*/'``: a ``*``
    followed by another character consumes it, so ``/* **/`` does NOT end there). A query must read as safe under
    both, or a comment one reader closes early hides a statement from the other. Unclosed literals raise."""
    out = list(cypher)
    i, n = 0, len(cypher)

    def blank(j: int, k: int) -> None:
        for x in range(j, k):
            if out[x] != "\n":
                out[x] = " "

    while i < n:
        c = cypher[i]
        if c in "'\"`":
            j = i + 1
            while j < n and cypher[j] != c:
                j += 2 if cypher[j] == "\\" and c != "`" else 1
            if j >= n:
                raise _Unclosed(f"unclosed {c} literal")
            blank(i, j + 1)
            i = j + 1
        elif cypher.startswith("//", i):
            j = cypher.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif cypher.startswith("/*", i):
            j = i + 2
            while True:
                if j >= n:
                    raise _Unclosed("unclosed /* comment")
                if cypher.startswith("*/", j):
                    break
                j += 2 if engine_comments and cypher[j] == "*" else 1
            blank(i, j + 2)
            i = j + 2
        else:
            i += 1
    return "".join(out)


def _statements(text: str) -> list[str]:
    return [p for p in text.split(";") if p.strip()]


def write_reason(cypher: str) -> str | None:
    """Why ``cypher`` looks like a write, a file access or more than one statement, or None if it reads only."""
    try:
        readings = [_blank(cypher), _blank(cypher, engine_comments=True)]
    except _Unclosed as e:
        return str(e)
    for text in readings:
        if len(_statements(text)) > 1:
            return "more than one statement (run() takes one)"
    for text in readings:
        reason = _write_reason(text)
        if reason:
            return reason
    return None


def _write_reason(text: str) -> str | None:
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
