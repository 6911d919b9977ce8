"""Caffe's message schema (written by us, every message, field and number of Caffe 1.0's).

Use ``from upcall.proto import caffe_pb2`` and the helpers below for text and binary files.
"""

from __future__ import annotations

import math
import os
from typing import TypeVar

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError, Message

from upcall.errors import UpcallError
from upcall.proto import caffe_pb2

M = TypeVar("M", bound=Message)

__all__ = [
    "array_to_blob",
    "blob_to_array",
    "caffe_pb2",
    "is_legacy_4d",
    "read_binary",
    "read_text",
    "to_text",
    "varint",
]


def read_text(path: str | os.PathLike, message: M) -> M:
    """Parse a .prototxt file into ``message``; a syntax error names the file, line and column."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        raise UpcallError(f"{path}: cannot read: {e.strerror}") from e
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise UpcallError(f"{path}:{e}") from e
    return message


def to_text(message: Message) -> str:
    return text_format.MessageToString(message)


def read_binary(path: str | os.PathLike, message: M) -> M:
    """Parse a binary protobuf file (.binaryproto, .caffemodel, .solverstate) into ``message``."""
    try:
        data = open(path, "rb").read()
    except OSError as e:
        raise UpcallError(f"{path}: cannot read: {e.strerror}") from e
    try:
        message.ParseFromString(data)
    except DecodeError as e:
        raise UpcallError(f"{path}: not a valid {message.DESCRIPTOR.name} file: {e}") from e
    return message


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint; a negative int32/int64 is sent as its 64-bit two's complement."""
    n &= (1 << 64) - 1
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_BLOB_DATA_TAG = 5 << 3 | 2  # BlobProto.data = 5, length-delimited (packed)


def array_to_blob(array: np.ndarray, *, legacy_4d: bool = False) -> caffe_pb2.BlobProto:
    """A BlobProto of float ``data`` with ``shape`` (as Caffe's Blob::ToProto writes it), or with
    the legacy num/channels/height/width header (as DIGITS writes mean files) for ``legacy_4d``."""
    # Filling the repeated field element by element takes seconds for AlexNet's 60 M weights;
    # parsing the packed field from its wire bytes (tag, length, little-endian floats) takes ms.
    payload = np.ascontiguousarray(array, dtype="<f4").tobytes()
    blob = caffe_pb2.BlobProto.FromString(varint(_BLOB_DATA_TAG) + varint(len(payload)) + payload)
    if legacy_4d:
        if array.ndim > 4:
            raise ValueError(f"a legacy blob has at most 4 axes, got shape {array.shape}")
        blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - array.ndim) + array.shape
    else:
        blob.shape.dim.extend(array.shape)
    return blob


def is_legacy_4d(blob: caffe_pb2.BlobProto) -> bool:
    """Caffe's rule: a blob with any of num/channels/height/width set has the legacy 4-D shape."""
    return any(blob.HasField(f) for f in ("num", "channels", "height", "width"))


def blob_to_array(blob: caffe_pb2.BlobProto, *, where: str) -> np.ndarray:
    """A float32 array from a BlobProto with ``shape`` or the legacy num/channels/height/width."""
    if is_legacy_4d(blob):
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:  # Caffe writes no shape at all for a 0-axis blob (PReLU's shared slope)
        shape = tuple(blob.shape.dim)
    values = blob.data if len(blob.data) else blob.double_data
    if len(values) != math.prod(shape):
        raise UpcallError(f"{where}: blob of shape {list(shape)} holds {len(values)} values")
    return np.asarray(values, dtype=np.float32).reshape(shape)
