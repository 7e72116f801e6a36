"""Writer process of the crash suite: ``python crash_writer.py STORE GRAPH_DIR``.

Loads the native graph at GRAPH_DIR, writes it into the embedded store at STORE and announces each write phase
(:mod:`circuitdb.store.versions`) on stdout, one per line, so the parent can kill it at a chosen point
(``CIRCUITDB_CRASH_AT`` kills at a phase boundary; the parent kills a random time after ``commit`` to land inside
COMMIT).
"""

from __future__ import annotations

import sys

from circuitdb.graph import AttributionGraph
from circuitdb.store import versions
from circuitdb.store.embedded import EmbeddedStore


def main() -> None:
    graph = AttributionGraph.load(sys.argv[2])
    versions.phase_hook = lambda name: print(name, flush=True)
    print("start", flush=True)
    with EmbeddedStore(sys.argv[1]) as store:
        store.write_graph(graph)
    print("closed", flush=True)


if __name__ == "__main__":
    main()
