"""Tests for upcall.engines.torch.data: Caffe's DataTransformer semantics on a real LMDB."""

from __future__ import annotations

import lmdb
import numpy as np
import pytest
import torch

from upcall.data.datum import array_to_datum, write_mean
from upcall.engines.torch.data import Feeder, Transform
from upcall.errors import UpcallError
from upcall.proto import caffe_pb2


def write_db(path, images, labels, *, encoding="none"):
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
            txn.put(b"%08d_%d" % (i, lab), array_to_datum(img, int(lab), encoding=encoding))
    env.close()


@pytest.fixture
def db(tmp_path, rng):
    images = rng.integers(0, 256, (7, 1, 6, 5), dtype=np.uint8)
    labels = np.arange(7) % 2
    write_db(tmp_path / "db", images, labels, encoding="png")
    return tmp_path / "db", images, labels


def test_mean_is_taken_at_the_crop_offset_then_scaled(rng):
    images = torch.from_numpy(rng.integers(0, 256, (4, 1, 6, 5), dtype=np.uint8))
    mean = rng.random((1, 6, 5)).astype(np.float32) * 100
    t = Transform(scale=0.5, crop_size=3, mean=mean)
    g = torch.Generator().manual_seed(3)
    out = t.apply(images, train=True, generator=g)
    g = torch.Generator().manual_seed(3)
    tops = torch.randint(0, 4, (4,), generator=g)
    lefts = torch.randint(0, 3, (4,), generator=g)
    for b in range(4):
        r, c = int(tops[b]), int(lefts[b])
        want = (images[b, :, r : r + 3, c : c + 3].numpy() - mean[:, r : r + 3, c : c + 3]) * 0.5
        np.testing.assert_allclose(out[b].numpy(), want, rtol=1e-6)
    assert (
        len(set(zip(tops.tolist(), lefts.tolist(), strict=True))) > 1
    )  # offsets really vary per image


def test_test_phase_centre_crops_and_never_mirrors(rng):
    images = torch.from_numpy(rng.integers(0, 256, (3, 1, 7, 6), dtype=np.uint8))
    t = Transform(crop_size=3, mirror=True, mean=np.full((1, 1, 1), 10, np.float32))
    out = t.apply(images, train=False)
    # (7 - 3) // 2 = 2, (6 - 3) // 2 = 1
    np.testing.assert_array_equal(out.numpy(), images[:, :, 2:5, 1:4].float().numpy() - 10)


def test_mirror_is_per_image_and_deterministic(rng):
    images = torch.from_numpy(rng.integers(0, 256, (16, 1, 4, 4), dtype=np.uint8))
    t = Transform(mirror=True)
    a = t.apply(images, train=True, generator=torch.Generator().manual_seed(1))
    b = t.apply(images, train=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    flipped = [torch.equal(a[i], images[i].float().flip(2)) for i in range(16)]
    kept = [torch.equal(a[i], images[i].float()) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)


def test_from_param_reads_mean_file_and_values(tmp_path):
    write_mean(tmp_path / "mean.binaryproto", np.full((1, 6, 5), 7.5, np.float32))
    p = caffe_pb2.TransformationParameter(mean_file="mean.binaryproto", crop_size=4, mirror=True)
    t = Transform.from_param(p, base=tmp_path)
    assert (t.crop_size, t.mirror, t.mean.shape, float(t.mean[0, 0, 0])) == (
        4,
        True,
        (1, 6, 5),
        7.5,
    )
    t = Transform.from_param(
        caffe_pb2.TransformationParameter(mean_value=[3.0], scale=2), base=tmp_path
    )
    assert t.mean.shape == (1, 1, 1) and t.scale == 2.0
    both = caffe_pb2.TransformationParameter(mean_file="mean.binaryproto", mean_value=[1])
    with pytest.raises(UpcallError, match=r"both mean_file and mean_value"):
        Transform.from_param(both, base=tmp_path)


def test_feeder_reads_in_key_order_and_wraps(db):
    path, images, labels = db
    f = Feeder(path, batch_size=3, transform=Transform(), train=True, seed=0)
    got = [f.next_batch() for _ in range(3)]
    order = [0, 1, 2, 3, 4, 5, 6, 0, 1]
    np.testing.assert_array_equal(
        torch.cat([d for d, _ in got]).numpy(), images[order].astype(np.float32)
    )
    np.testing.assert_array_equal(torch.cat([lab for _, lab in got]).numpy(), labels[order])
    assert f.output_shape == (3, 1, 6, 5)


def test_feeder_state_round_trip_resumes_identically(db):
    path, _, _ = db
    t = Transform(crop_size=4, mirror=True)
    a = Feeder(path, batch_size=2, transform=t, train=True, seed=5)
    a.next_batch()
    state = a.state()
    want = [a.next_batch()[0] for _ in range(3)]
    b = Feeder(path, batch_size=2, transform=t, train=True, seed=99)
    b.load_state(state)
    for w in want:
        assert torch.equal(b.next_batch()[0], w)


def test_feeder_rejects_too_large_crop(db):
    path, _, _ = db
    with pytest.raises(UpcallError, match=r"crop_size 8 is larger than the 6×5 images"):
        Feeder(path, batch_size=2, transform=Transform(crop_size=8), train=True, seed=0)
