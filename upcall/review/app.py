"""The review pages: one detection at a time, its spectrogram and audio, the verdict keys.

Routes: ``/`` (the first detection without a verdict), ``/item/N`` (the page; a POST of
``{"verdict", "note", "revision"}`` saves the row at once), ``/item/N/spectrogram.png`` and
``/item/N/audio.wav?speed=S`` (made on request from the recording). Flask with Jinja2
templates, served by waitress on 127.0.0.1 unless told otherwise. Errors are one line, on the
page and in the log.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException, NotFound

from upcall.errors import UpcallError
from upcall.review import media
from upcall.review.store import VERDICTS, Item, Store, revision

SERVE_THREADS = 4
log = logging.getLogger("upcall.review")


@dataclass
class Session:
    """What one review shows: the store, the detections in review order, and the sample (an
    :class:`upcall.review.sampling.Sample` over ``population``) when only a sample is verified."""

    store: Store
    items: list[Item]
    sample: object | None = None
    population: list[Item] | None = None  # the detections the sample was drawn from

    def verdict(self, item: Item) -> str:
        return self.store.recordings[item.rec].verdicts[item.row]

    def progress(self) -> dict:
        counts = {v: 0 for v in VERDICTS}
        for item in self.items:
            if v := self.verdict(item):
                counts[v] += 1
        return {"verified": sum(counts.values()), "total": len(self.items), **counts}

    def estimates(self):
        """R2's estimates from the sample's verdicts so far (None without a sample)."""
        if self.sample is None:
            return None
        from upcall.review.sampling import estimate

        assert self.population is not None
        verdicts = {i: self.verdict(it) or None for i, it in enumerate(self.population)}
        return estimate(self.sample, verdicts)


def make_app(session: Session) -> Flask:
    """The Flask app of ``session``."""
    here = Path(__file__).parent
    app = Flask(
        "upcall.review",
        template_folder=str(here / "templates"),
        static_folder=str(here / "static"),
    )
    app.extensions["upcall_review"] = session
    app.add_template_filter(_interval, "interval")

    def item_at(i: int) -> Item:
        if not 0 <= i < len(session.items):
            raise NotFound(f"no detection {i + 1}: this review has {len(session.items)}")
        return session.items[i]

    @app.errorhandler(Exception)
    def one_line(e: Exception):
        code = (
            e.code if isinstance(e, HTTPException) else 400 if isinstance(e, UpcallError) else 500
        )
        message = str(e.description if isinstance(e, HTTPException) else e).splitlines()[0]
        if code == 500:
            log.exception("unhandled error")
        else:
            log.warning("%s: %s", request.path, message)
        if request.method == "POST":
            return jsonify({"error": message}), code
        return Response(f"{message}\n", code, mimetype="text/plain")

    @app.route("/")
    def first():
        todo = [i for i, it in enumerate(session.items) if not session.verdict(it)]
        return redirect(f"/item/{todo[0] if todo else 0}")

    @app.route("/item/<int:i>")
    def page(i: int):
        if not session.items:
            return render_template("empty.html", problems=session.store.problems)
        item = item_at(i)
        rec = session.store.recordings[item.rec]
        s = rec.selections[item.row]
        return render_template(
            "review.html",
            i=i,
            total=len(session.items),
            rec=rec,
            s=s,
            row=item.row,
            verdict=rec.verdicts[item.row],
            note=rec.notes[item.row],
            revision=revision(rec.verdicts[item.row], rec.notes[item.row]),
            progress=session.progress(),
            problems=session.store.problems,
            estimates=session.estimates(),
            speeds=media.SPEEDS,
            context_s=media.CONTEXT_S,
        )

    @app.route("/item/<int:i>", methods=["POST"])
    def save(i: int):
        item = item_at(i)
        body = request.get_json(silent=True) or {}
        verdict = str(body.get("verdict", ""))
        rec = session.store.recordings[item.rec]
        seen = body.get("revision")
        new, before = session.store.save(rec, item.row, verdict, str(body.get("note", "")), seen)
        warning = None
        if before is not None:
            was = before[0] or "no verdict"
            warning = (f"This detection was changed elsewhere (another tab?) since this page "
                       f"loaded: it was {was}{' (' + before[1] + ')' if before[1] else ''}; "
                       f"your {verdict or 'note'} replaced it.")  # fmt: skip
            log.warning("%s row %d: %s", rec.rel, item.row + 1, warning)
        return jsonify({"revision": new, "warning": warning, "progress": session.progress()})

    @app.route("/item/<int:i>/spectrogram.png")
    def spectrogram(i: int):
        rec, s = _audio_of(session, item_at(i))
        png = media.spectrogram_png(rec.audio, s, title=f"{rec.rel}  row {s.number or ''}")
        return Response(png, mimetype="image/png")

    @app.route("/item/<int:i>/audio.wav")
    def audio(i: int):
        rec, s = _audio_of(session, item_at(i))
        speed = request.args.get("speed", "1")
        if speed not in {str(v) for v in media.SPEEDS}:
            raise UpcallError(f"speed must be one of {', '.join(map(str, media.SPEEDS))}: {speed}")
        return Response(media.wav_bytes(rec.audio, s, speed=int(speed)), mimetype="audio/wav")

    return app


def _interval(e, places: int = 3) -> str:
    """An estimate as ``value (low–high)``; "–" before any verdict."""
    if e is None or e.value is None:
        return "–"
    return f"{e.value:.{places}f} ({e.low:.{places}f}–{e.high:.{places}f})"


def _audio_of(session: Session, item: Item):
    rec = session.store.recordings[item.rec]
    if rec.audio is None:
        raise NotFound(rec.problem or f"{rec.table}: no audio")
    return rec, rec.selections[item.row]


def serve(session: Session, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Serve ``session`` with waitress until Ctrl-C or SIGTERM (every verdict is on disk
    already)."""
    from waitress import create_server

    app = make_app(session)
    try:
        server = create_server(app, host=host, port=port, threads=SERVE_THREADS, ident="upcall")
    except OSError as e:
        raise UpcallError(f"{host}:{port}: cannot listen there: {e.strerror or e}") from None
    listen = getattr(server, "effective_listen", None)  # several: a name with several addresses
    urls = [f"http://[{h}]:{p}" if ":" in str(h) else f"http://{h}:{p}"
            for h, p in listen or [(server.effective_host, server.effective_port)]]  # fmt: skip
    url = ", ".join(urls)
    progress = session.progress()
    print(f"upcall review: {progress['verified']} of {progress['total']} detections verified; "
          f"listening on {url} (verdicts in {session.store.out}); Ctrl-C stops",
          file=sys.stderr, flush=True)  # fmt: skip
    try:
        server.run()  # until KeyboardInterrupt (upcall.cli makes SIGTERM one)
    finally:
        if listen is None:  # (waitress closes several itself)
            server.close()
