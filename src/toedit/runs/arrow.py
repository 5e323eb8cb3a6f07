"""Arrow tables from Python columns without importing pandas.

pyarrow's `pa.array` (and `Table.from_pydict`) on Python lists imports pandas to test for pandas objects:
~0.4 s of a short run's start-up, for nothing. `table` builds the same arrays from numpy buffers (equal arrays,
the same Parquet bytes: `tests/runs/test_arrow.py`) and leaves anything unusual (None, non-str text, a column
of over 2 GiB of text) to `pa.array`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

_NUMPY = {pa.int32(): np.int32, pa.int64(): np.int64, pa.float32(): np.float32, pa.float64(): np.float64}
_MAX_OFFSET = 2**31 - 1


class _Unusual(Exception):
    """A column `_column` leaves to `pa.array`."""


def _buffer_array(type_: pa.DataType, values: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(np.ascontiguousarray(values))])


def _offsets(lengths: list[int]) -> pa.Array:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > _MAX_OFFSET:
        raise _Unusual
    return _buffer_array(pa.int32(), offsets.astype(np.int32))


def _column(values: list[Any], type_: pa.DataType) -> pa.Array:
    if any(v is None for v in values):
        raise _Unusual
    if pa.types.is_list(type_):
        if not all(isinstance(v, list) for v in values):
            raise _Unusual
        flat = [x for v in values for x in v]
        return pa.ListArray.from_arrays(
            _offsets([len(v) for v in values]), _column(flat, type_.value_type), type=type_
        )
    if type_ == pa.string():
        if not all(type(v) is str for v in values):
            raise _Unusual
        try:
            data = [v.encode("utf-8") for v in values]
        except UnicodeEncodeError as exc:  # lone surrogates: pa.array reports them
            raise _Unusual from exc
        offsets = _offsets([len(d) for d in data])
        return pa.Array.from_buffers(
            type_, len(values), [None, offsets.buffers()[1], pa.py_buffer(b"".join(data))]
        )
    dtype = _NUMPY.get(type_)
    kind = float if pa.types.is_floating(type_) else int
    if dtype is None or not all(type(v) is kind or (kind is float and type(v) is int) for v in values):
        raise _Unusual
    try:
        return _buffer_array(type_, np.asarray(values, dtype=dtype))
    except OverflowError as exc:
        raise _Unusual from exc


def table(columns: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    """`pa.Table.from_pydict(columns, schema=schema)`, without importing pandas for the usual columns."""
    arrays = []
    for f in schema:
        try:
            arrays.append(_column(columns[f.name], f.type))
        except _Unusual:
            arrays.append(pa.array(columns[f.name], type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)
