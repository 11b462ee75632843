"""Read the float tensors of a TensorFlow checkpoint (``<prefix>.index`` + ``<prefix>.data-*``) without tensorflow.

Hand-written because no maintained library reads TensorFlow's tensor-bundle format without
installing tensorflow itself (a 2 GB dependency) just to load ~3 MB of weights.

The format, as TensorFlow documents it (``tensorflow/core/util/tensor_bundle/tensor_bundle.h``):
the ``.index`` file is a LevelDB table (``table/format.md`` in LevelDB) whose keys are tensor
names and whose values are ``BundleEntryProto`` messages (dtype, shape, shard, offset, size);
the empty key holds the ``BundleHeaderProto``. The tensor bytes lie, little-endian and in C
order, at ``offset`` in ``<prefix>.data-<shard>-of-<shards>``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER = 5  # 1 byte compression type + 4 bytes crc
# TensorFlow DataType enum values (types.proto) -> numpy
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_, 19: np.float16}


class CheckpointError(ValueError):
    """The checkpoint files are missing, truncated or in a form this reader does not handle."""


@dataclass
class _Entry:
    dtype: int = 0
    shape: tuple[int, ...] = ()
    shard_id: int = 0
    offset: int = 0
    size: int = 0


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _entry(buf: bytes) -> _Entry:
    entry = _Entry()
    for number, _wire, value in _proto_fields(buf):
        if number == 1:
            entry.dtype = value
        elif number == 2:  # TensorShapeProto: repeated Dim dim = 2 { int64 size = 1 }
            dims = []
            for dn, _w, dim in _proto_fields(value):
                if dn == 2:
                    dims.append(next((v for n, _w2, v in _proto_fields(dim) if n == 1), 0))
            entry.shape = tuple(dims)
        elif number == 3:
            entry.shard_id = value
        elif number == 4:
            entry.offset = value
        elif number == 5:
            entry.size = value
        elif number == 7:
            raise CheckpointError("partitioned (sliced) tensors are not supported")
    return entry


def _block(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of one uncompressed LevelDB block."""
    if offset + size + _BLOCK_TRAILER > len(data):
        raise CheckpointError("index block lies past the end of the file")
    if data[offset + size] != 0:
        raise CheckpointError("compressed index blocks are not supported (TensorFlow writes them uncompressed)")
    block = data[offset : offset + size]
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    pairs, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        pairs.append((key, block[pos : pos + value_len]))
        pos += value_len
    return pairs


def read_checkpoint(prefix: Path | str) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint at `prefix` (the path without ``.index``), by name."""
    prefix = str(prefix)
    index_path = Path(prefix + ".index")
    if not index_path.is_file():
        raise CheckpointError(f"no checkpoint index at {index_path}")
    data = index_path.read_bytes()
    if len(data) < _FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
        raise CheckpointError(f"{index_path} is not a TensorFlow checkpoint index (bad table magic)")
    footer = data[-_FOOTER_SIZE:]
    _meta_offset, pos = _varint(footer, 0)
    _meta_size, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    entries: dict[str, _Entry] = {}
    num_shards = 1
    for _last_key, handle in _block(data, index_offset, index_size):
        block_offset, hpos = _varint(handle, 0)
        block_size, _ = _varint(handle, hpos)
        for key, value in _block(data, block_offset, block_size):
            if key == b"":  # BundleHeaderProto: int32 num_shards = 1
                num_shards = next((v for n, _w, v in _proto_fields(value) if n == 1), 1)
                continue
            entries[key.decode()] = _entry(value)
    shards: dict[int, bytes] = {}
    tensors: dict[str, np.ndarray] = {}
    for name, e in entries.items():
        if e.dtype not in _DTYPES:
            continue  # strings and other types are not weights
        if e.shard_id not in shards:
            path = Path(f"{prefix}.data-{e.shard_id:05d}-of-{num_shards:05d}")
            if not path.is_file():
                raise CheckpointError(f"checkpoint shard missing: {path}")
            shards[e.shard_id] = path.read_bytes()
        raw = shards[e.shard_id][e.offset : e.offset + e.size]
        dtype = np.dtype(_DTYPES[e.dtype]).newbyteorder("<")
        count = int(np.prod(e.shape)) if e.shape else 1
        if len(raw) != count * dtype.itemsize:
            raise CheckpointError(f"tensor {name}: {len(raw)} bytes for shape {e.shape} of {dtype}")
        tensors[name] = np.frombuffer(raw, dtype=dtype).reshape(e.shape).astype(dtype.newbyteorder("="))
    return tensors
