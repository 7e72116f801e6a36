"""circuitdb.dictionaries: SAEs and transcoders behind one small protocol (:class:`Dictionary`).

Formats: SAELens objects / local SAELens folders (:mod:`.saelens`), the plain safetensors + JSON pair
(:mod:`.safetensors`). :func:`load_dictionaries` resolves a spec and checks it against a model; :mod:`.train` fits
small transcoders / SAEs on a toy model's activations.
"""

from circuitdb.dictionaries.base import Dictionary, fraction_variance_explained
from circuitdb.dictionaries.load import check_dictionaries, load_dictionaries, resolve_spec, zoo_dictionary_dir
from circuitdb.dictionaries.safetensors import load_dictionary_file, save_dictionary

__all__ = [
    "Dictionary", "fraction_variance_explained", "load_dictionaries", "check_dictionaries", "resolve_spec",
    "zoo_dictionary_dir", "save_dictionary", "load_dictionary_file",
]
