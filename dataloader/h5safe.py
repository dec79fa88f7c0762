"""Opening HDF5 files that may come from anyone: PyTables never unpickles anything in this process.

PyTables turns two kinds of stored bytes back into Python objects with `pickle.loads`: an attribute
whose bytes value ends in "." (tables/attributeset.py reads every attribute of a node as soon as its
`_v_attrs` is touched, so merely opening a crafted file can run code), and the rows of a VLArray with an
ObjectAtom (tables/atom.py). A pickle can run any command when loaded, so a prepared or synthetic file
handed to us must never reach `pickle.loads`.

`open_h5` is the one way the project opens an HDF5 file. It first disarms both places, process-wide
(`_disarm`: the `pickle` name those two PyTables modules look up is replaced by an object whose `loads`
raises, so PyTables keeps the raw bytes instead), and for files it reads it then walks every node and
refuses the file, with one line naming the node, if anything in it would have been unpickled or if it
links outside itself (an external link makes the reader open another file). The project itself only ever
writes numbers, numeric arrays and text attributes, so nothing legitimate is refused.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import UserError


class _NoUnpickling:
    """Stands in for the `pickle` module inside PyTables: writing is allowed, loading never is."""

    HIGHEST_PROTOCOL = pickle.HIGHEST_PROTOCOL
    dumps = staticmethod(pickle.dumps)

    @staticmethod
    def loads(data: Any, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError("physiodiff never unpickles data from HDF5 files")


def _disarm() -> Any:
    """Replace the pickle module of PyTables' attribute and atom code (idempotent); returns `tables`."""
    import tables
    import tables.atom
    import tables.attributeset

    for mod in (tables.attributeset, tables.atom):
        if not isinstance(getattr(mod, "pickle", None), _NoUnpickling):
            mod.pickle = _NoUnpickling()
    return tables


def would_unpickle(value: Any) -> bool:
    """Whether PyTables would hand this raw attribute value to pickle.loads (attributeset.py's test)."""
    return (isinstance(value, np.generic) and value.dtype.type == np.bytes_ and value.itemsize > 0
            and bytes(value).endswith(b".") and bytes(value) not in (b"0", b"0."))


def find_unsafe(h5: Any) -> str | None:
    """The first thing in an open file that a trusting reader would unpickle or follow out of the file:
    `"<node>: <why>"`, or None when the file holds only plain data."""
    tables = _disarm()
    for node in h5.walk_nodes("/"):
        path = node._v_pathname
        if isinstance(node, tables.link.ExternalLink):
            return f"{path}: an external link to another file"
        if isinstance(node, tables.VLArray) and node.atom.kind == "object":
            return f"{path}: an array of pickled Python objects"
        if isinstance(node, tables.link.Link):
            continue  # a soft link inside the file points at a node that is itself walked
        attrs = node._v_attrs
        for name in attrs._v_attrnames:
            # read the stored value itself (with loading disarmed, attrs[name] returns these same bytes)
            if would_unpickle(attrs._g_getattr(node, name)):
                return f"{path}: attribute {name!r} holds a pickled Python object"
    return None


def open_h5(path: str | Path, mode: Literal["r", "a", "w"], where: str, **kwargs: Any) -> Any:
    """Open `path` with PyTables (mode r, a or w; `kwargs` go to tables.open_file) after disarming
    unpickling; files opened for reading or appending are refused (UserError at `where`, file closed) when
    `find_unsafe` finds anything."""
    tables = _disarm()
    h5 = tables.open_file(str(path), mode, **kwargs)
    if mode == "w":
        return h5
    try:
        bad = find_unsafe(h5)
    except BaseException:
        h5.close()
        raise
    if bad is not None:
        h5.close()
        raise UserError(where, f"refusing an unsafe HDF5 file: {bad} (physiodiff never unpickles or follows "
                               "links in data files)")
    return h5
