"""Caffe Datum records and mean blobs: exact fields, pixels and errors, on real LMDBs."""

from __future__ import annotations

import io

import lmdb
import numpy as np
import pytest
from PIL import Image

from upcall.data import datum as lmdb_io
from upcall.data.datum import (
    array_to_datum,
    datum_to_array,
    iter_db,
    load_db,
    read_mean,
    write_mean,
)
from upcall.errors import UpcallError
from upcall.proto import caffe_pb2


def write_lmdb(path, records: dict[bytes, bytes]) -> None:
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, value in records.items():
            txn.put(key, value)
    env.close()


def test_png_datum_fields_and_bytes(rng):
    image = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    datum = caffe_pb2.Datum.FromString(array_to_datum(image, 1, encoding="png"))
    assert (datum.channels, datum.height, datum.width, datum.label, datum.encoded) == (
        1,
        5,
        7,
        1,
        True,
    )
    with Image.open(io.BytesIO(datum.data)) as im:
        assert im.format == "PNG" and im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), image)


def test_raw_datum_holds_chw_bytes(rng):
    image = rng.integers(0, 256, (1, 5, 7), dtype=np.uint8)
    datum = caffe_pb2.Datum.FromString(array_to_datum(image, 0, encoding="none"))
    assert (datum.channels, datum.height, datum.width, datum.label, datum.encoded) == (
        1,
        5,
        7,
        0,
        False,
    )
    assert datum.data == image.tobytes()


@pytest.mark.parametrize("encoding", ["png", "none"])
@pytest.mark.parametrize("shape", [(6, 4), (1, 6, 4), (3, 6, 4)])
def test_round_trip(rng, encoding, shape):
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    out, label = datum_to_array(array_to_datum(image, 3, encoding=encoding))
    assert label == 3 and out.dtype == np.uint8
    np.testing.assert_array_equal(out, image if image.ndim == 3 else image[None])


@pytest.mark.parametrize("encoding", ["png", "none"])
@pytest.mark.parametrize("shape", [(6, 4), (1, 300, 2), (3, 6, 4)])
def test_datum_bytes_are_what_protobuf_writes(rng, encoding, shape):
    # array_to_datum writes the wire format itself; it must be protobuf's, byte for byte.
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    chw = image if image.ndim == 3 else image[None]
    for label in (0, 1, 127, 128, 300, 2**31 - 1, -1, -(2**31)):
        value = array_to_datum(image, label, encoding=encoding)
        datum = caffe_pb2.Datum(
            channels=chw.shape[0], height=chw.shape[1], width=chw.shape[2], label=label
        )
        if encoding == "png":
            datum.data, datum.encoded = caffe_pb2.Datum.FromString(value).data, True
        else:
            datum.data = chw.tobytes()
        assert value == datum.SerializeToString()


def test_colour_png_is_stored_as_rgb_from_bgr_chw():
    bgr = np.zeros((3, 2, 2), np.uint8)
    bgr[0] = 200  # blue plane first, as Caffe orders channels
    datum = caffe_pb2.Datum.FromString(array_to_datum(bgr, 0, encoding="png"))
    rgb = np.asarray(Image.open(io.BytesIO(datum.data)))
    assert rgb.shape == (2, 2, 3) and rgb[0, 0].tolist() == [0, 0, 200]


def test_bad_images_and_records_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        array_to_datum(np.zeros((2, 2), np.float32), 0)
    with pytest.raises(ValueError, match="encoding"):
        array_to_datum(np.zeros((2, 2), np.uint8), 0, encoding="jpg")
    with pytest.raises(UpcallError, match="rec: not a Caffe Datum"):
        datum_to_array(b"hello", where="rec")
    with pytest.raises(UpcallError, match="data is empty"):
        datum_to_array(caffe_pb2.Datum(channels=1, height=2, width=2).SerializeToString())
    short = caffe_pb2.Datum(channels=1, height=2, width=2, data=b"abc").SerializeToString()
    with pytest.raises(UpcallError, match="does not match its shape"):
        datum_to_array(short)


def test_load_db_and_iter_db_follow_key_order(tmp_path, rng):
    images = rng.integers(0, 256, (4, 1, 3, 5), dtype=np.uint8)
    labels = [1, 0, 1, 1]
    # Inserted out of order: LMDB sorts by key, and so must the readers.
    write_lmdb(
        tmp_path / "db",
        {b"%08d_%d" % (i, labels[i]): array_to_datum(images[i], labels[i]) for i in (2, 0, 3, 1)},
    )
    x, y = load_db(tmp_path / "db")
    assert x.shape == (4, 1, 3, 5) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x, images)
    assert y.tolist() == labels
    keys = [key for key, _, _ in iter_db(tmp_path / "db")]
    assert keys == ["00000000_1", "00000001_0", "00000002_1", "00000003_1"]


def test_load_db_decodes_in_parallel(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(lmdb_io, "_PARALLEL_DECODE_MIN", 1)
    images = rng.integers(0, 256, (300, 1, 4, 4), dtype=np.uint8)
    write_lmdb(
        tmp_path / "db",
        {b"%08d_%d" % (i, i % 2): array_to_datum(im, i % 2) for i, im in enumerate(images)},
    )
    x, y = load_db(tmp_path / "db", workers=2)
    np.testing.assert_array_equal(x, images)
    assert y.tolist() == [i % 2 for i in range(300)]


def test_a_bad_record_decoded_in_parallel_names_the_db_and_key(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(lmdb_io, "_PARALLEL_DECODE_MIN", 1)
    images = rng.integers(0, 256, (300, 1, 4, 4), dtype=np.uint8)
    records = {b"%08d_%d" % (i, i % 2): array_to_datum(im, i % 2) for i, im in enumerate(images)}
    records[b"00000290_0"] = caffe_pb2.Datum(
        channels=1, height=4, width=4, label=0, data=b"not a png", encoded=True
    ).SerializeToString()
    write_lmdb(tmp_path / "db", records)
    with pytest.raises(UpcallError, match=rf"^{tmp_path / 'db'}: record 00000290_0: "):
        load_db(tmp_path / "db", workers=2)


def test_load_db_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UpcallError, match="not an LMDB directory"):
        load_db(tmp_path / "empty")
    write_lmdb(tmp_path / "junk", {b"a": b"hello"})
    with pytest.raises(UpcallError, match="junk: first record: not a Caffe Datum"):
        load_db(tmp_path / "junk")
    write_lmdb(
        tmp_path / "mixed",
        {
            b"0": array_to_datum(np.zeros((2, 2), np.uint8), 0),
            b"1": array_to_datum(np.zeros((3, 2), np.uint8), 0),
        },
    )
    with pytest.raises(UpcallError, match=r"record 1 is \(1, 3, 2\)"):
        load_db(tmp_path / "mixed")


def test_mean_round_trip_with_the_legacy_header(tmp_path):
    mean = np.arange(12, dtype=np.float32).reshape(1, 3, 4) + 0.5
    write_mean(tmp_path / "mean.binaryproto", mean)
    blob = caffe_pb2.BlobProto.FromString((tmp_path / "mean.binaryproto").read_bytes())
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 1, 3, 4)
    out = read_mean(tmp_path / "mean.binaryproto")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, mean)


def test_read_mean_accepts_shape_dims_and_names_bad_files(tmp_path):
    blob = caffe_pb2.BlobProto(data=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    blob.shape.dim.extend([1, 1, 2, 3])
    (tmp_path / "m.binaryproto").write_bytes(blob.SerializeToString())
    np.testing.assert_array_equal(read_mean(tmp_path / "m.binaryproto"), [[[1, 2, 3], [4, 5, 6]]])
    bad = caffe_pb2.BlobProto(num=1, channels=1, height=2, width=2, data=[1.0])
    (tmp_path / "bad.binaryproto").write_bytes(bad.SerializeToString())
    with pytest.raises(UpcallError, match=r"bad\.binaryproto: blob of shape \[1, 1, 2, 2\] holds 1 values"):
        read_mean(tmp_path / "bad.binaryproto")


@pytest.mark.parametrize("shape", [(256, 256), (129, 30), (5, 1), (1, 7), (4, 6, 3)])
def test_encode_png_is_lossless_for_pillow(rng, shape):
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    with Image.open(io.BytesIO(lmdb_io.encode_png(image))) as im:
        assert im.format == "PNG" and im.mode == ("L" if len(shape) == 2 else "RGB")
        np.testing.assert_array_equal(np.asarray(im), image)


def test_encode_png_of_a_strided_view(rng):
    image = rng.integers(0, 256, (20, 40), dtype=np.uint8)[:, 5:25]  # as a centre crop leaves it
    np.testing.assert_array_equal(
        np.asarray(Image.open(io.BytesIO(lmdb_io.encode_png(image)))), image
    )
    with pytest.raises(ValueError, match="expected uint8"):
        lmdb_io.encode_png(np.zeros((2, 2, 4), np.uint8))


@pytest.mark.parametrize("encoding", ["png", "none"])
def test_write_db_round_trips_through_load_db(tmp_path, rng, encoding):
    images = rng.integers(0, 256, (5, 1, 3, 4), dtype=np.uint8)
    lmdb_io.write_db(tmp_path / "db", images, [1, 0, 0, 1, 1], encoding=encoding)
    x, y = load_db(tmp_path / "db")
    np.testing.assert_array_equal(x, images)
    assert y.tolist() == [1, 0, 0, 1, 1]
    assert [key for key, _, _ in iter_db(tmp_path / "db")][:2] == ["00000000_1", "00000001_0"]
