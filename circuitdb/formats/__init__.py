"""Other tools' graph files, both ways: Neuronpedia / circuit-tracer JSON, circuit-tracer ``.pt``, EAP-IG / MIB
JSON and ``.pt``, GraphML, GEXF (and circuitdb's own directory format).

    from circuitdb.formats import read_file, write_file, import_file
    graph, circuit = read_file("graph.json")                 # format from the content / suffix
    write_file(circuit, "circuit.json", format="eap-ig")

A file is parsed and validated whole before anything is returned or stored, so a bad file writes nothing.
Submodules import lazily; nothing here imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from circuitdb.errors import ConfigError, one_of

FORMATS = ("native", "neuronpedia", "circuit-tracer", "eap-ig", "graphml", "gexf")
WRITABLE = ("native", "neuronpedia", "eap-ig", "graphml", "gexf")


def guess_format(path: str | Path) -> str:
    """The format of ``path``: a directory is native; ``.graphml``/``.gexf`` by suffix; ``.pt`` by its keys
    (circuit-tracer or EAP-IG); ``.json`` by its top-level keys."""
    p = Path(path)
    if p.is_dir() or (not p.suffix and not p.exists()):
        return "native"
    suf = p.suffix.lower()
    if suf in (".graphml", ".gexf"):
        return suf[1:]
    if suf == ".pt":
        return "circuit-tracer" if _pt_is_circuit_tracer(p) else "eap-ig"
    if suf == ".json" and p.is_file():
        try:
            head = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p} is not valid JSON: {e}") from e
        if isinstance(head, dict) and "cfg" in head and "edges" in head:
            return "eap-ig"
        if isinstance(head, dict) and "links" in head:
            return "neuronpedia"
    raise ConfigError(f"can't tell the format of {str(p)!r}; pass format= (one of {', '.join(FORMATS)})")


def _pt_is_circuit_tracer(p: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(p) as z:
            blob = b"".join(z.read(n) for n in z.namelist() if n.endswith("data.pkl"))
    except (zipfile.BadZipFile, OSError):
        return False
    return b"adjacency_matrix" in blob


def read_file(path: str | Path, format: str | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """``(graph, circuit or None)`` from a file; EAP-IG files also give the circuit of their ``in_graph`` edges."""
    fmt = format or guess_format(path)
    if fmt == "native":
        from circuitdb.graph import AttributionGraph

        return AttributionGraph.load(path), None
    if fmt == "neuronpedia":
        from circuitdb.formats.neuronpedia import read_neuronpedia

        return read_neuronpedia(path), None
    if fmt == "circuit-tracer":
        from circuitdb.formats.circuit_tracer import read_circuit_tracer

        return read_circuit_tracer(path, **kwargs), None
    if fmt == "eap-ig":
        from circuitdb.formats.eap_ig import read_eap_ig

        return read_eap_ig(path, **kwargs)
    if fmt in ("graphml", "gexf"):
        from circuitdb.formats import networkx_io

        return getattr(networkx_io, f"read_{fmt}")(path), None
    raise ConfigError(one_of(fmt, FORMATS, "graph file format"))


def write_file(obj: Any, path: str | Path, format: str | None = None, **kwargs: Any) -> Path:
    """Write a graph or circuit; ``format`` defaults from the suffix (``.json`` → neuronpedia, ``.graphml``,
    ``.gexf``; a directory → native)."""
    path = Path(path)
    fmt = format or {".json": "neuronpedia", ".graphml": "graphml", ".gexf": "gexf", "": "native"}.get(
        path.suffix.lower())
    if fmt is None or fmt not in WRITABLE:
        raise ConfigError(one_of(fmt or path.suffix, WRITABLE, "graph file format to write"))
    if fmt == "native":
        graph = obj.graph if hasattr(obj, "source_graph_id") else obj
        return graph.save(path)
    if fmt == "neuronpedia":
        from circuitdb.formats.neuronpedia import write_neuronpedia

        return write_neuronpedia(obj, path, **kwargs)
    if fmt == "eap-ig":
        from circuitdb.formats.eap_ig import write_eap_ig

        return write_eap_ig(obj, path, **kwargs)
    from circuitdb.formats import networkx_io

    return getattr(networkx_io, f"write_{fmt}")(obj, path)


def import_file(store: Any, path: str | Path, format: str | None = None, *, graph_id: str | None = None,
                circuit_name: str | None = None, **kwargs: Any) -> tuple[str, str | None]:
    """Read ``path`` (validated whole first) and write its graph (and circuit, if the file has one) to ``store``.
    Returns ``(graph id, circuit name or None)``."""
    from dataclasses import replace

    graph, circuit = read_file(path, format, **kwargs)
    gid = store.write_graph(graph, graph_id=graph_id)
    name = None
    if circuit is not None:
        name = circuit_name or circuit.name or "imported"
        replace(circuit, source_graph_id=gid).save(store, name=name)
    return gid, name


__all__ = ["FORMATS", "WRITABLE", "guess_format", "import_file", "read_file", "write_file"]
