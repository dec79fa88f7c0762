"""String attributes that every HDF5 reader gets back as text: variable-length UTF-8 strings.

PyTables writes a Python str attribute as a fixed-length HDF5 string, which h5py (and so most tools built on
it) hands back as `numpy.bytes_`, to be decoded by the reader. `text_attrs` rewrites the string attributes
the project wrote as variable-length UTF-8 strings, which h5py returns as `str` (PyTables too). It runs with
h5py once a file is complete and closed by PyTables; PyTables' own attributes (CLASS, VERSION, TITLE, ...;
upper case) are left as PyTables wrote them.
"""
from __future__ import annotations

import os
from typing import Sequence


def text_attrs(path: str | os.PathLike, nodes: Sequence[str] = ("/",)) -> None:
    """Rewrite every fixed-length string attribute of `nodes` (HDF5 paths) in `path` as a UTF-8 str."""
    import h5py

    with h5py.File(path, "r+") as f:
        for node in nodes:
            attrs = f[node].attrs
            for k in list(attrs):
                v = attrs[k]
                if isinstance(v, bytes) and not k.isupper():  # numpy.bytes_ is a bytes
                    attrs[k] = v.decode("utf-8")  # h5py stores a str as variable-length UTF-8
