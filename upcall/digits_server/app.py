"""``upcall digits serve``: DIGITS 6's REST/JSON API for image classification, backed by upcall.

Facts followed (NVIDIA/DIGITS source; ../shared/reference/digits-caffe.md §1a, §1e):
- digits/webapp.py: ``url_map.redirect_defaults = False`` (else ``download.tar.gz`` redirects to
  ``download``); blueprints under /datasets/images/classification and /models/images/classification.
- digits/utils/routing.py ``request_wants_json``: JSON when the URL ends in ``.json`` or Accept
  prefers application/json.
- digits/utils/auth.py: the username is the form/query field ``username`` or the cookie; the
  create, delete, abort and rename routes answer 401 without one (never a redirect), checked
  before the job lookup; a bad name is 400 "Invalid username - ..." (lowercase letter first,
  then ``[a-z0-9._-]``); only the owner may delete or abort (403).
- digits/views.py: ``/login`` sets the ``username`` cookie and answers 302; ``handle_error`` gives
  ``{"error": {"message", "type", "description"}}`` with the HTTP status; ``job_status`` answers
  200 ``{"error": "Job not found."}`` for an unknown id; abort → "Job aborted." (403 when not
  running, 404 unknown); delete → "Job deleted." (403 for a dataset a model uses); ``/files/``
  serves any file under the jobs folder; ``/index.json``, ``/completed_jobs.json``,
  ``/jobs/<id>/table_data.json``.
- digits/model/images/classification/views.py: classify_one.json / classify_many.json need no
  login and return the top 5 ``[label, round(100 * p, 2)]`` pairs.
- digits/model/views.py ``download``: tar.gz by default; tar, tar.gz, tgz, tar.bz2, zip; any
  other extension 400; ``?epoch=N`` picks a snapshot.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from flask import Flask, Response, jsonify, redirect, request, send_from_directory
from werkzeug.exceptions import BadRequest, Forbidden, HTTPException, Unauthorized

from upcall.digits_server import browse, forms, jobjson, newjob, page, paths, views
from upcall.digits_server.jobs import (
    DONE,
    INIT,
    RUNNING,
    TYPES,
    JobRecord,
    JobStore,
    new_id,
    one_line,
)
from upcall.digits_server.routing import lookup, wants_json
from upcall.digits_server.work import (
    build_dataset_job,
    train_model_job,
    write_lists,
    write_model_job,
)
from upcall.errors import UpcallError

_USERNAME = re.compile(r"[a-z][a-z0-9._-]*")
# A request body (413 beyond, refused before it is read). The whale tutorial's lists are 2.4 MB
# for 30,000 images; a spectrogram PNG is a few kB; the form's text fields keep Flask's 500 kB.
MAX_REQUEST = 64 << 20
SERVE_THREADS = 8  # waitress's request threads (DIGITS's clients poll status while uploading)
DataRootsArg = Iterable[str | os.PathLike] | None


def make_app(
    jobs_dir: str | Path,
    *,
    engine: str = "torch",
    backend: str | None = None,
    data_roots: DataRootsArg = None,
) -> Flask:
    """The Flask app serving ``jobs_dir`` (jobs found there are loaded, as DIGITS does).

    ``engine``: the upcall engine that trains models ("torch" or "caffe"); ``backend``: the
    Predictor backend for classification (default: the engine's name); ``data_roots``: the only
    folders whose files requests may name (default: the current folder). The jobs folder is
    locked: a second server on it is a one-line UpcallError.
    """
    roots = paths.DataRoots(data_roots if data_roots is not None else [Path.cwd()])
    here = Path(__file__).parent
    app = Flask(
        "upcall.digits",
        template_folder=str(here / "templates"),
        static_folder=str(here / "static"),  # the pages' stylesheet and script
    )
    app.url_map.redirect_defaults = False  # as digits/webapp.py: download.tar.gz must not redirect
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST
    app.config["UPCALL_DATA_ROOTS"] = roots
    store = JobStore(Path(jobs_dir), {"dataset": build_dataset_job, "model": train_model_job})
    app.extensions["upcall_digits"] = store
    app.config["UPCALL_ENGINE"] = engine
    app.config["UPCALL_BACKEND"] = backend or engine
    _routes(app, store)
    views.add_routes(app, store)
    newjob.add_routes(app, store, lambda: username(required=False))
    browse.add_routes(app, store)
    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 5000,
    jobs_dir: str | Path = "digits-jobs",
    *,
    engine: str = "torch",
    data_roots: DataRootsArg = None,
) -> None:
    """Serve the API on ``host:port`` (localhost by default) with waitress, a production WSGI
    server, until Ctrl-C or SIGTERM; then the running jobs end Aborted (their training children
    stopped with a snapshot), as DIGITS's scheduler aborts them when it stops."""
    import sys

    from waitress import create_server

    app = make_app(jobs_dir, engine=engine, data_roots=data_roots)
    server = listen = None
    try:
        try:
            server = create_server(app, host=host, port=port, threads=SERVE_THREADS, ident="upcall")
        except OSError as e:  # the port is taken, the host is not this machine's
            raise UpcallError(f"{host}:{port}: cannot listen there: {e.strerror or e}") from None
        listen = getattr(server, "effective_listen", None)  # several: a name with several addresses
        urls = [_url(h, p) for h, p in listen or [(server.effective_host, server.effective_port)]]
        jobs = app.extensions["upcall_digits"].dir
        print(f"upcall digits serve: listening on {', '.join(urls)} (jobs in {jobs}); Ctrl-C stops",
              file=sys.stderr, flush=True)  # fmt: skip
        server.run()  # until KeyboardInterrupt (upcall.cli makes SIGTERM one), which it takes
    finally:
        app.extensions["upcall_digits"].shutdown()
        if server is not None and listen is None:  # (waitress closes several itself)
            server.close()


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def username(required: bool = True) -> str | None:
    """digits/utils/auth.py: the form/query field or the cookie; 401 without, 400 when invalid."""
    name = request.values.get("username") or request.cookies.get("username")
    if not name:
        if required:
            raise Unauthorized("You must be logged in to do that")
        return None
    if not _USERNAME.fullmatch(name):
        raise BadRequest(
            "Invalid username - must start with a lowercase letter and contain only "
            "lowercase letters, digits, '.', '-' and '_'"
        )
    return name


def local_target(target: str | None) -> str:
    """``target`` when it is a path on this server, else "/": never a redirect off-site.

    Browsers read ``//host``, ``/\\host`` and ``/<tab>/host`` as another host, and schemes
    (``javascript:``, ``http:``) as themselves, so only "/" followed by neither "/" nor "\\",
    with no control character, space or backslash anywhere, and no scheme or host, passes.
    """
    if not target or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return "/"
    if "\\" in target or any(ord(c) <= 32 or ord(c) == 127 for c in target):
        return "/"
    parts = urllib.parse.urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


def owned(store: JobStore, job_id: str) -> JobRecord:
    """A job the logged-in user may change (DIGITS: login first, then the lookup, then the
    owner check): 401, 404 or 403 otherwise."""
    user = username()
    job = lookup(store, job_id)
    if job.username and job.username != user:
        raise Forbidden("You do not have permission to do that")
    return job


def _form_errors(e: forms.FormErrors) -> tuple[Response, int]:
    errors = {field: [one_line(str(m)) for m in msgs] for field, msgs in e.errors.items()}
    return jsonify({"errors": errors}), 400


def _routes(app: Flask, store: JobStore) -> None:
    @app.errorhandler(Exception)
    def handle_error(e: Exception):
        """digits/views.py handle_error: the exception's status, JSON when asked."""
        if isinstance(e, forms.FormErrors):
            again = None if wants_json() else newjob.form_again(e.errors, store)
            return again or _form_errors(e)
        code = e.code if isinstance(e, HTTPException) else 500
        message = one_line(str(e.description if isinstance(e, HTTPException) else e))
        kind = type(e).__name__
        if not isinstance(e, HTTPException) and not isinstance(e, UpcallError):
            app.logger.exception("unhandled error")
        if wants_json():
            body = {"message": message, "type": kind, "description": message}
            return jsonify({"error": body}), code
        return Response(f"{kind}: {message}\n", code, mimetype="text/plain")

    @app.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "GET":
            return page.login_page(next_path=local_target(request.args.get("next")))
        name = request.form.get("username", "")
        if not _USERNAME.fullmatch(name):
            return page.login_page("Invalid username"), 200  # DIGITS re-renders, no cookie
        response = redirect(local_target(request.args.get("next")))
        response.set_cookie("username", name)
        return response

    @app.route("/logout", methods=["GET", "POST"])
    def logout():
        response = redirect("/")
        response.delete_cookie("username")
        return response

    @app.route("/datasets/images/classification.json", methods=["POST"])
    @app.route("/datasets/images/classification", methods=["POST"])
    def create_dataset():
        user = username()
        files = {k: f.read() for k, f in request.files.items()}
        form = forms.check_dataset(request.form, files)
        local = forms.checkbox(form, "textfile_use_local_files")
        form["_local"] = "1" if local else "0"
        form["_val"] = "1" if forms.checkbox(form, "textfile_use_val") else "0"
        texts = paths.dataset_lists(form, files, app.config["UPCALL_DATA_ROOTS"], local)
        record = store.create(
            JobRecord(
                new_id(),
                "dataset",
                form["dataset_name"],
                user,
                form["group_name"],
                form={
                    k: v
                    for k, v in form.items()
                    if k.startswith("_") or k in request.form or k in forms.DATASET_DEFAULTS
                },
            )
        )
        try:
            write_lists(store.folder(record.id), texts)
        except BaseException:
            store.delete(record.id)
            raise
        store.submit(record.id)
        return _created(store, [record])

    @app.route("/models/images/classification.json", methods=["POST"])
    @app.route("/models/images/classification", methods=["POST"])
    def create_model():
        """One job per learning rate; ``{"jobs": [...]}`` for several (model views.py)."""
        user = username()
        datasets = {j.id for j in store.all("dataset") if j.status in (*RUNNING, DONE)}
        parsed = forms.check_model(newjob.resolve_previous(request.form, store), datasets)
        f = parsed["form"]
        dataset = lookup(store, f["dataset"], "dataset")
        if f["method"] == "custom":  # before any job is made
            _check_prototxt(f["custom_network"], app.config["UPCALL_ENGINE"])
        records = []
        for lr in parsed["rates"]:
            name = f["model_name"] + (f" learning_rate:{lr}" if len(parsed["rates"]) > 1 else "")
            record = store.create(
                JobRecord(
                    new_id(),
                    "model",
                    name,
                    user,
                    f["group_name"],
                    dataset_id=dataset.id,
                    engine=app.config["UPCALL_ENGINE"],
                    form=dict(f, learning_rate=str(lr)),
                )
            )
            records.append(record)
        if dataset.status == DONE:  # else the worker writes them once the dataset is built
            _write_models(store, records, dataset, parsed)
        for record in records:
            store.submit(record.id)
        return _created(store, records)

    @app.route("/<any(jobs,datasets,models):kind>/<job_id>/status")
    def job_status(kind, job_id):
        job = store.get(job_id)
        if job is None:
            return jsonify({"error": "Job not found."})
        return jsonify(
            {"status": job.status, "name": job.name, "type": TYPES[job.kind], "error": job.error}
        )

    @app.route("/<any(jobs,datasets,models):kind>/<job_id>/abort", methods=["POST"])
    def abort(kind, job_id):
        owned(store, job_id)
        if not store.abort(job_id):
            raise Forbidden("Job not aborted")
        return "Job aborted."

    @app.route("/<any(jobs,datasets,models):kind>/<job_id>", methods=["DELETE"])
    def delete(kind, job_id):
        job = owned(store, job_id)
        users = store.users_of(job_id) if job.kind == "dataset" else []
        if users:
            names = ", ".join(f'"{j.name}"' for j in users)
            raise Forbidden(
                f'Cannot delete "{job.name}" because {len(users)} model'
                f"{'s' if len(users) != 1 else ''} depend{'s' if len(users) == 1 else ''} on it: "
                f"{names}"
            )
        if job.kind == "dataset" and (job.status == "Running" or job_id in store.abort_hooks):
            raise Forbidden(f'Cannot delete "{job.name}" while it is being built: abort it first')
        store.delete(job_id)
        return "Job deleted."

    @app.route("/jobs/<job_id>", methods=["PUT"])
    def rename(job_id):
        owned(store, job_id)
        name = request.values.get("job_name", "").strip()
        if not name:
            raise BadRequest("job_name is a required field")
        store.update(job_id, name=name)
        return "Job renamed."

    @app.route("/jobs/<job_id>")
    def job_page(job_id):
        job = lookup(store, job_id)
        return redirect(f"/{job.kind}s/{job_id}")

    @app.route("/files/<path:path>")
    def serve_file(path):
        return send_from_directory(store.dir, path)


def _write_models(store: JobStore, records: list[JobRecord], dataset: JobRecord, parsed: dict):
    """The model jobs' files; a network that cannot be built is the form's error (400), as
    DIGITS's "Bad network" validation is, and no job is left behind."""
    try:
        for record, lr in zip(records, parsed["rates"], strict=True):
            write_model_job(
                store.folder(record.id), store.folder(dataset.id), parsed, lr, record.engine
            )
    except (UpcallError, ValueError) as e:
        for record in records:
            store.delete(record.id)
        field = "custom_network" if parsed["form"]["method"] == "custom" else "standard_networks"
        raise forms.FormErrors({field: [f"Bad network: {e}"]}) from e
    except Exception:
        for record in records:
            store.delete(record.id)
        raise


def _check_prototxt(text: str, engine: str) -> None:
    """digits/frameworks/caffe_framework.py validate_network: "Bad network: Not a valid
    NetParameter: ..." (400) for a custom network protobuf cannot parse. A layer that reads a
    file the net names (an InfogainLoss matrix, a Python layer's module) is refused too: those
    are server paths no --data-root vouches for (Data sources and means are the dataset's).
    With the torch engine, a layer it does not implement is refused here, before any job."""
    from google.protobuf import text_format

    from upcall.network.shapes import SUPPORTED_TYPES, unsupported_message
    from upcall.network.upgrade import upgrade_net
    from upcall.proto import caffe_pb2

    net = caffe_pb2.NetParameter()
    try:
        text_format.Merge(text, net)
        upgrade_net(net, where="the custom network")  # a 2015 net is checked as Caffe reads it
    except (text_format.ParseError, UpcallError) as e:
        raise forms.FormErrors(
            {"custom_network": [f"Bad network: Not a valid NetParameter: {e}"]}
        ) from e
    for layer in net.layer:
        if engine == "torch" and layer.type not in SUPPORTED_TYPES:
            message = f"Bad network: {unsupported_message(layer)}"
            raise forms.FormErrors({"custom_network": [message]})
        reads = (layer.infogain_loss_param, layer.image_data_param, layer.hdf5_data_param)
        if any(p.source for p in reads) or layer.type == "Python":
            raise forms.FormErrors(
                {
                    "custom_network": [
                        f"Bad network: layer {layer.name!r} ({layer.type}) reads a file on the "
                        "server; upcall digits serve takes networks that read only the dataset"
                    ]
                }
            )


def _created(store: JobStore, records: list[JobRecord]) -> Response:
    """A single job → its json_dict(); several → {"jobs": [...]} (the creation status).
    An HTML form's post goes to the job's page (the home page for several), as DIGITS's."""
    if not wants_json():
        return redirect(f"/{records[0].kind}s/{records[0].id}" if len(records) == 1 else "/")
    dicts = [jobjson.job_json(store, r) | {"status": INIT} for r in records]
    return jsonify(dicts[0] if len(dicts) == 1 else {"jobs": dicts})


__all__ = ["make_app", "serve"]
