"""Only files inside the audio ROOT: absolute paths, '..' and symbolic links out are refused."""

from __future__ import annotations

import os

import pytest

from upcall.review.paths import Outside, inside, root_of


def test_inside_the_root(tmp_path):
    (tmp_path / "root/site1").mkdir(parents=True)
    (tmp_path / "root/site1/rec.wav").write_bytes(b"")
    assert inside(tmp_path / "root", "site1/rec.wav") == tmp_path / "root/site1/rec.wav"
    os.symlink(tmp_path / "root/site1/rec.wav", tmp_path / "root/link.wav")
    assert inside(tmp_path / "root", "link.wav") == tmp_path / "root/link.wav"  # a link inside


@pytest.mark.parametrize(
    ("rel", "why"),
    [
        ("../secret.wav", "'..' leaves"),
        ("site1/../../secret.wav", "'..' leaves"),
        ("..\\secret.wav", "'..' leaves"),
        ("/etc/passwd", "an absolute path"),
        ("", "an absolute path"),
        ("out/secret.wav", "a symbolic link"),
        ("out.wav", "a symbolic link"),
    ],
)
def test_outside_the_root_is_refused(tmp_path, rel, why):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    os.symlink(tmp_path, root / "out")  # a folder link out
    os.symlink(tmp_path / "secret.wav", root / "out.wav")  # a file link out
    with pytest.raises(Outside, match=why) as e:
        inside(root, rel)
    assert str(root) in str(e.value) and "\n" not in str(e.value)


def test_root_of():
    assert str(root_of("/data/site1/rec.wav", "site1/rec.wav")) == "/data"
    assert root_of("/data/site1/rec.wav", "site2/rec.wav") is None
    assert str(root_of("/rec.wav", "rec.wav")) == "/"
