"""Caffe LMDB records (Datum) and mean files (BlobProto), read and written as DIGITS does.

A Datum holds one image, either raw (``data`` = uint8 bytes in C, H, W order, colour in BGR as
Caffe's OpenCV-based readers expect) or encoded (``encoded=True``, ``data`` = the bytes of a PNG
of the H×W×C RGB / H×W grey image, which Caffe decodes back to BGR). Images cross this module's
interface as uint8 (C, H, W) in Caffe's channel order.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import lmdb
import numpy as np
from google.protobuf.message import DecodeError
from PIL import Image

from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_bytes
from upcall.parallel import map_chunks
from upcall.proto import array_to_blob, blob_to_array, caffe_pb2, read_binary, varint

ENCODINGS = ("png", "none")
# Below this many encoded records, starting processes costs more than decoding in parallel saves.
_PARALLEL_DECODE_MIN = 2048


def _to_chw(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, not {image.dtype}")
    if image.ndim == 2:
        return image[None]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected (H, W) or (C, H, W) with C in 1, 3, got shape {image.shape}")
    return image


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of a uint8 (H, W) grey or (H, W, 3) RGB image.

    Written here rather than with Pillow because this is the dataset build's hot loop: the "Sub"
    filter and zlib's Huffman-only level 1 (the speed-first choice, as OpenCV's default RLE is
    for Caffe) encode a 256×256 spectrogram about twice as fast as Pillow's adaptive filters at
    level 1, at the same size. Any PNG reader decodes it; the tests check Pillow does, exactly.
    """
    if image.dtype != np.uint8 or image.ndim < 2 or image.shape[2:] not in ((), (3,)):
        raise ValueError(f"expected uint8 (H, W) or (H, W, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    bpp = 1 if image.ndim == 2 else 3  # bytes per pixel
    flat = image.reshape(h, w * bpp)
    rows = np.empty((h, w * bpp + 1), np.uint8)
    rows[:, 0] = 1  # filter type Sub: each byte minus the byte one pixel to its left (mod 256)
    rows[:, 1 : bpp + 1] = flat[:, :bpp]
    np.subtract(flat[:, bpp:], flat[:, :-bpp], out=rows[:, bpp + 1 :])
    z = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    header = struct.pack(">IIBBBBB", w, h, 8, 0 if bpp == 1 else 2, 0, 0, 0)  # 8-bit grey / RGB
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", z.compress(rows.tobytes()) + z.flush()),
            _png_chunk(b"IEND", b""),
        )
    )


def _datum_bytes(
    c: int, h: int, w: int, data: bytes | memoryview, label: int, encoded: bool
) -> bytes:
    """The wire bytes protobuf writes for this Datum (fields in number order, all set ones
    present), written directly so a 64 KB raw image is copied once rather than three times."""
    head = b"\x08%s\x10%s\x18%s\x22%s" % (varint(c), varint(h), varint(w), varint(len(data)))
    tail = b"\x28" + varint(label) + (b"\x38\x01" if encoded else b"")
    return b"".join((head, data, tail))


def array_to_datum(image: np.ndarray, label: int, *, encoding: str = "png") -> bytes:
    """Serialize a uint8 (C, H, W) or (H, W) image and its label as a Caffe Datum.

    ``encoding="png"`` stores a PNG (``encoded=True``), ``"none"`` the raw CHW bytes.
    """
    chw = _to_chw(image)
    c, h, w = chw.shape
    if encoding == "none":
        data = memoryview(np.ascontiguousarray(chw)).cast("B")
    elif encoding == "png":
        # PNG holds RGB; Caffe's CHW colour order is BGR, so flip channels on the way in.
        data = encode_png(chw[0] if c == 1 else chw[::-1].transpose(1, 2, 0))
    else:
        raise ValueError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
    return _datum_bytes(c, h, w, data, int(label), encoding == "png")


def datum_to_array(value: bytes, *, where: str = "record") -> tuple[np.ndarray, int]:
    """Parse a serialized Datum into (uint8 (C, H, W), label); ``where`` names it in errors."""
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except DecodeError as e:
        raise UpcallError(f"{where}: not a Caffe Datum: {e}") from e
    if not datum.data:
        raise UpcallError(f"{where}: not a Caffe Datum with image bytes (data is empty)")
    if datum.encoded:
        try:
            with Image.open(io.BytesIO(datum.data)) as im:
                pixels = np.asarray(im.convert("L" if datum.channels == 1 else "RGB"))
        except (OSError, SyntaxError, ValueError) as e:
            raise UpcallError(f"{where}: encoded image cannot be decoded: {e}") from e
        chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)[::-1]
        return np.ascontiguousarray(chw), int(datum.label)
    shape = (datum.channels, datum.height, datum.width)
    if min(shape) <= 0 or len(datum.data) != shape[0] * shape[1] * shape[2]:
        raise UpcallError(
            f"{where}: Datum of {len(datum.data)} bytes does not match its shape {shape}"
        )
    return np.frombuffer(datum.data, np.uint8).reshape(shape), int(datum.label)


_META_MAGIC = 0xBEEFC0DE  # LMDB's meta pages (the first two pages of data.mdb) start with it
_META = struct.Struct(
    "<16xII16xI92xQQ"
)  # page header, magic, version, …, psize, …, last_pgno, txnid


def _check_size(data: Path) -> None:
    """UpcallError unless ``data`` (a data.mdb) is as long as its meta pages say.

    LMDB maps the file and reads pages through the map: a page past the end of a truncated file
    is a SIGBUS ("Bus error") that kills the process, so the size is checked from the meta
    pages, read with plain file I/O, before LMDB ever maps the file.
    """
    size = data.stat().st_size
    with open(data, "rb") as f:
        head = f.read(2 * 65536)  # both meta pages for any page size LMDB uses (4 KB to 64 KB)
    if len(head) < _META.size:
        raise UpcallError(f"{data}: not an LMDB file ({size} bytes; truncated?)")
    metas = []
    psize = _META.unpack_from(head, 0)[2]
    for offset in (0, psize):
        if offset + _META.size > len(head):
            raise UpcallError(f"{data}: truncated LMDB file ({size} bytes, no second meta page)")
        magic, _, _, last_pgno, txnid = _META.unpack_from(head, offset)
        if magic != _META_MAGIC:
            raise UpcallError(f"{data}: not an LMDB file (bad meta page at byte {offset})")
        metas.append((txnid, last_pgno))
    need = (max(metas)[1] + 1) * psize  # LMDB uses the meta page of the newest transaction
    if size < need:
        raise UpcallError(f"{data}: truncated LMDB file ({size} bytes, its pages need {need})")


def check_db(env: lmdb.Environment, path: Path) -> None:
    """Read the open DB's first and last records, so a corrupted tree fails here, naming ``path``.

    Only LMDB's structure is checked; callers parse the records (and name a bad one).
    """
    data = path / "data.mdb"
    info, stat = env.info(), env.stat()
    if data.stat().st_size < (info["last_pgno"] + 1) * stat["psize"]:
        raise UpcallError(f"{data}: truncated LMDB file")
    with env.begin() as txn:
        cursor = txn.cursor()
        for found in (cursor.first(), cursor.last()):
            if found:
                bytes(cursor.value())  # touch every page of the value


@contextlib.contextmanager
def open_db(path: str | os.PathLike) -> Iterator[lmdb.Environment]:
    """Open an existing LMDB read-only after checking it (size, first and last record).

    A path that is not a readable LMDB, a truncated or corrupted one, and an LMDB error while
    the caller reads it are each an UpcallError naming the file.
    """
    path = Path(path)
    data = path / "data.mdb"
    if not data.is_file():
        raise UpcallError(f"{path}: not an LMDB directory (no data.mdb)")
    try:
        _check_size(data)
        # lock=False: we never write, and readers of a finished DB need no lock file.
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, max_dbs=0)
    except OSError as e:
        raise UpcallError(f"{data}: cannot read: {e.strerror or e}") from e
    except lmdb.Error as e:
        raise UpcallError(f"{data}: not a readable LMDB: {e}") from e
    try:
        check_db(env, path)
        yield env
    except lmdb.Error as e:  # a page garbled past the first and last record, found while reading
        raise UpcallError(f"{data}: corrupted LMDB: {e}") from e
    finally:
        env.close()


def iter_db(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray, int]]:
    """Yield (key, uint8 (C, H, W), label) for every record, in key order."""
    with open_db(path) as env, env.begin() as txn:
        for key, value in txn.cursor():
            name = key.decode("ascii", "replace")
            yield (name, *datum_to_array(value, where=f"{path}: record {name}"))


def write_error(db: Path, e: lmdb.Error) -> UpcallError:
    """The one-line error for an LMDB that could not be written, naming ``db``.

    LMDB reports a short write as "Input/output error", which is what a full disk gives, so the
    free space is looked up to say so.
    """
    note = ""
    with contextlib.suppress(OSError):
        folder = next(p for p in (db, *db.parents) if p.exists())
        st = os.statvfs(folder)
        if st.f_bavail * st.f_frsize < (1 << 20):
            note = f" (no space left on the device: {st.f_bavail * st.f_frsize} bytes free)"
    return UpcallError(f"{db}: cannot write the LMDB: {e}{note}")


def write_db(
    path: str | os.PathLike, images: np.ndarray, labels: Sequence[int], *, encoding: str = "png"
) -> None:
    """Write images (N, C, H, W) or (N, H, W) uint8 in the given order under DIGITS's keys.

    For small DBs built in memory (tests, tools); ``upcall lmdb`` builds datasets from lists.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    env = lmdb.open(str(path), map_size=max(1 << 24, 2 * images.nbytes + 4096 * len(images)))
    try:
        with env.begin(write=True) as txn:
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                txn.put(b"%08d_%d" % (i, label), array_to_datum(image, label, encoding=encoding))
    finally:
        env.close()


def _decode_chunk(
    records: Sequence[tuple[str, bytes]], *, path: str
) -> list[tuple[np.ndarray, int]]:
    return [datum_to_array(v, where=f"{path}: record {k}") for k, v in records]


def load_db(
    path: str | os.PathLike, *, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a whole DB into memory: (uint8 (N, C, H, W), int64 (N,)), in key order.

    Large PNG-encoded DBs are decoded on all cores (``workers``); raw records are copied straight
    from the LMDB into the result, never held twice.
    """
    with open_db(path) as env, env.begin() as txn:
        n = txn.stat()["entries"]
        if n == 0:
            raise UpcallError(f"{path}: the LMDB holds no records")
        cursor = txn.cursor()
        cursor.first()
        first, _ = datum_to_array(cursor.value(), where=f"{path}: first record")
        images = np.empty((n, *first.shape), np.uint8)
        labels = np.empty(n, np.int64)
        if caffe_pb2.Datum.FromString(cursor.value()).encoded and n >= _PARALLEL_DECODE_MIN:
            records = [
                (k.decode("ascii", "replace"), bytes(v))
                for k, v in cursor.iternext(keys=True, values=True)
            ]
            decoded = map_chunks(
                functools.partial(_decode_chunk, path=str(path)),
                records,
                workers=workers,
                desc=Path(path).name,
                unit="img",
            )
        else:
            decoded = (
                datum_to_array(v, where=f"{path}: record {k.decode('ascii', 'replace')}")
                for k, v in cursor
            )
        for i, (image, label) in enumerate(decoded):
            if image.shape != first.shape:
                raise UpcallError(
                    f"{path}: record {i} is {image.shape}, the first record {first.shape}"
                )
            images[i], labels[i] = image, label
    return images, labels


def write_mean(path: str | os.PathLike, mean: np.ndarray) -> None:
    """Write a (C, H, W) or (H, W) mean image as a BlobProto with DIGITS's legacy 4-D header."""
    mean = np.asarray(mean, dtype=np.float32)
    chw = mean[None] if mean.ndim == 2 else mean
    if chw.ndim != 3:
        raise ValueError(f"mean must be (H, W) or (C, H, W), got shape {mean.shape}")
    blob = array_to_blob(chw, legacy_4d=True)
    atomic_write_bytes(path, blob.SerializeToString())


def read_mean(path: str | os.PathLike) -> np.ndarray:
    """Read a mean.binaryproto (legacy num/channels/height/width or shape.dim) as float32 (C, H, W)."""
    blob = read_binary(path, caffe_pb2.BlobProto())
    data = blob_to_array(blob, where=str(path))
    if data.ndim == 4 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3 or min(data.shape) <= 0:
        raise UpcallError(f"{path}: mean blob has shape {list(data.shape)}, expected (1, C, H, W)")
    return data


def transform_mean(param: caffe_pb2.TransformationParameter, *, base: Path) -> np.ndarray | None:
    """The mean a transform_param subtracts: float32 (C, H, W) from its mean_file (relative to
    ``base``), (C, 1, 1) from its mean_values, or None. Training and inference both use this."""
    if param.HasField("mean_file") and len(param.mean_value):
        raise UpcallError(f"{base}: transform_param has both mean_file and mean_value")
    if param.HasField("mean_file"):
        return read_mean(base / param.mean_file).astype(np.float32)
    if len(param.mean_value):
        return np.asarray(param.mean_value, np.float32)[:, None, None]
    return None
