"""The review pages through Flask's test client: the page of a detection, saving verdicts,
continuing, the media routes, one-line errors, paths outside ROOT refused, the sample's
estimates, and the command's own errors."""

from __future__ import annotations

import argparse
import os
import shutil
import socket

import pytest

from tests.review.detections import make_detections
from upcall import cli
from upcall.review.app import make_app
from upcall.review.command import session
from upcall.review.store import revision


@pytest.fixture(scope="module")
def dets(tmp_path_factory):
    return make_detections(tmp_path_factory.mktemp("app"))


def client(dets, out, **kw):
    args = dict(detections=[dets.det], out=out, audio=None, order=None, sample=None, seed=0,
                threshold=0.5) | kw  # fmt: skip
    s = session(argparse.Namespace(**args))
    return s, make_app(s).test_client()


def test_a_review_from_start_to_reopening(dets, tmp_path):
    _, c = client(dets, tmp_path / "v")
    assert c.get("/").location == "/item/0"
    page = c.get("/item/0").text
    top = max(x.score for rows in dets.tables.values() for x in rows)
    assert f'<b id="score">{top:.3f}</b>' in page  # by score: the highest first
    assert "2026-03-01 04:00:" in page and "UTC" in page  # its clock time
    assert f"0 / {dets.reviewed} verified" in page
    assert 'src="/item/0/spectrogram.png"' in page and 'src="/item/0/audio.wav?speed=1"' in page
    r = c.post("/item/0", json={"verdict": "yes", "note": "clear", "revision": revision("", "")})
    assert r.status_code == 200 and r.json["warning"] is None
    assert r.json["progress"] == {"verified": 1, "total": dets.reviewed, "yes": 1, "no": 0,
                                  "unsure": 0}  # fmt: skip
    assert c.post("/item/1", json={"verdict": "no", "note": ""}).status_code == 200
    # a new server on the same VERIFIED continues where the last stopped
    _, again = client(dets, tmp_path / "v")
    assert again.get("/").location == "/item/2"
    page = again.get("/item/0").text
    assert 'value="clear"' in page and '<span id="verdict">yes</span>' in page
    assert "2 / 7 verified · yes 1 · no 1 · unsure 0" in " ".join(page.split())


def test_a_stale_page_gets_a_warning(dets, tmp_path):
    _, c = client(dets, tmp_path / "v")
    loaded = revision("", "")
    c.post("/item/3", json={"verdict": "yes", "note": "", "revision": loaded})
    r = c.post("/item/3", json={"verdict": "no", "note": "", "revision": loaded})
    assert "was yes" in r.json["warning"] and "your no replaced it" in r.json["warning"]


def test_media_and_one_line_errors(dets, tmp_path):
    _, c = client(dets, tmp_path / "v")
    png = c.get("/item/0/spectrogram.png")
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data[:4] == b"\x89PNG"
    wav = c.get("/item/0/audio.wav?speed=8")
    assert wav.mimetype == "audio/wav" and wav.data[:4] == b"RIFF"
    assert int.from_bytes(wav.data[24:28], "little") == 16000  # the header's sample rate
    bad = c.get("/item/0/audio.wav?speed=3")
    assert bad.status_code == 400 and bad.text == "speed must be one of 1, 2, 4, 8: 3\n"
    missing = c.get("/item/99")
    assert missing.status_code == 404 and missing.text.count("\n") == 1
    r = c.post("/item/0", json={"verdict": "maybe"})
    assert r.status_code == 400 and "verdict must be one of yes, no, unsure" in r.json["error"]


def test_missing_audio_and_bad_tables_on_the_page(dets, tmp_path):
    det, audio = tmp_path / "det", tmp_path / "audio"
    shutil.copytree(dets.det, det)
    shutil.copytree(dets.audio, audio)
    (audio / "site1/a.wav").unlink()
    table = det / "site2/b.wav.detections.txt"
    table.write_text(table.read_text().replace("\t", "  ", 3))
    _, c = client(dets, tmp_path / "v", detections=[det], audio=audio)
    page = c.get("/item/0").text
    assert f"{table}:1: not a Raven selection table" in page  # in the problems list
    assert f'<p id="problem" class="problem">{audio / "site1/a.wav"}: missing audio' in page
    assert "spectrogram.png" not in page
    r = c.get("/item/0/spectrogram.png")
    assert r.status_code == 404 and "missing audio" in r.text and r.text.count("\n") == 1
    assert c.post("/item/0", json={"verdict": "no"}).status_code == 200  # still verifiable


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_paths_outside_the_root_are_never_served(dets, tmp_path, kind):
    det, audio = tmp_path / "det", tmp_path / "audio"
    shutil.copytree(dets.det, det)
    shutil.copytree(dets.audio, audio)
    secret = tmp_path / "secret.wav"
    shutil.copy(audio / "site1/a.wav", secret)
    csv = det / "recordings.csv"
    if kind == "symlink":  # a link in the archive leading out of it
        (audio / "site1/a.wav").unlink()
        os.symlink(secret, audio / "site1/a.wav")
        extra = {"audio": audio}
    else:
        rel = "../secret.wav" if kind == "dotdot" else str(secret)
        csv.write_text(csv.read_text().replace("site1/a.wav,", f"{rel},", 1))
        (det / "site1/a.wav.detections.txt").rename(det / "site1/../secret.wav.detections.txt")
        extra = {"audio": audio}
    s, c = client(dets, tmp_path / "v", detections=[det], **extra)
    assert any("refused" in p for p in s.store.problems), s.store.problems
    served = [r.audio for r in s.store.recordings if r.audio is not None]
    assert served and all(str(p).startswith(str(audio)) for p in served)
    for i, item in enumerate(s.items):
        rec = s.store.recordings[item.rec]
        r = c.get(f"/item/{i}/audio.wav")
        if rec.audio is None:
            assert r.status_code == 404 and "refused" in c.get(f"/item/{i}").text
            if kind != "symlink":  # its VERIFIED table would lie outside VERIFIED too
                assert c.post(f"/item/{i}", json={"verdict": "no"}).status_code == 400
        else:
            assert r.status_code == 200
    outside = [p for p in tmp_path.rglob("*.selections.txt") if p.parts[len(tmp_path.parts)] != "v"
               and p.parent.parent != audio]  # fmt: skip
    assert outside == [] and not (tmp_path / "secret.wav.selections.txt").exists()


def test_a_sample_shows_its_estimates(dets, tmp_path):
    s, c = client(dets, tmp_path / "v", sample=4, seed=1)
    assert len(s.items) == 4 and len(s.population) == dets.reviewed
    for i in range(4):
        c.post(f"/item/{i}", json={"verdict": "yes" if i % 2 else "no"})
    page = c.get("/item/0").text
    assert 'id="estimates"' in page and "precision (95 % interval)" in page
    assert "Estimated true up-calls among all 7 detections" in page


def test_the_command_line_errors_are_one_line(dets, tmp_path, capsys):
    assert cli.main(["review", str(dets.det), "--out", str(tmp_path / "v"),
                     "--audio", str(tmp_path / "nowhere")]) != 0  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--audio must be a folder" in err
    (tmp_path / "empty").mkdir()
    assert cli.main(["review", str(tmp_path / "empty"), "--out", str(tmp_path / "v")]) != 0
    assert "no detection tables" in capsys.readouterr().err


def test_a_port_in_use_is_one_line(dets, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc = cli.main(["review", str(dets.det), "--out", str(tmp_path / "v"), "--port", str(port)])
    assert rc != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"127.0.0.1:{port}: cannot listen there" in err
