"""Writer process of the full-disk test: ``python disk_writer.py STORE GRAPH_DIR [FSIZE_BYTES]``.

Opens the embedded store at STORE, writes the native graph at GRAPH_DIR (its id already holds an older version),
then reads that id again, closes the store and prints one JSON line: the error type and message of the write (if
any), the edge count and checksum read back after it, and whether the close came back. With FSIZE_BYTES the
process runs under ``RLIMIT_FSIZE`` with SIGXFSZ ignored, so a write past that file size fails with EFBIG (the
substitute for a full disk where no filesystem can be mounted).
"""

from __future__ import annotations

import json
import resource
import signal
import sys

from circuitdb.graph import AttributionGraph
from circuitdb.store.embedded import EmbeddedStore


def main() -> None:
    store_path, graph_dir = sys.argv[1], sys.argv[2]
    graph = AttributionGraph.load(graph_dir)
    store = EmbeddedStore(store_path)
    store.connect()
    if len(sys.argv) > 3:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(sys.argv[3])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    out: dict = {"error": None, "message": None}
    try:
        store.write_graph(graph)
    except Exception as e:  # noqa: BLE001 - reported to the parent
        out["error"], out["message"] = type(e).__name__, str(e)
    back = store.read_graph(graph.id)
    out["n_edges"] = back.n_edges
    out["equals_new"] = back.equals(graph)
    store.close()
    out["closed"] = True
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
