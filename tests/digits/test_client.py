"""The DIGITS client against a stub HTTP server that answers as DIGITS 6 does (§1e of the
reference): request building, form fields, error lines, retries, and no duplicate creates."""

from __future__ import annotations

import email
import json
import socket
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from upcall.cli import main
from upcall.digits.client import DigitsClient, DigitsError, encode_form
from upcall.digits.jobfile import read_request, submit
from upcall.errors import UpcallError

ROOT = Path(__file__).resolve().parents[2]
DROP = object()  # a route answer: close the connection without answering


def parse_form(content_type: str, body: bytes) -> dict[str, object]:
    """multipart/form-data back into {name: text or (filename, bytes)}."""
    msg = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    out = {}
    for part in msg.get_payload():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        filename = part.get_filename()
        out[name] = (filename, data) if filename else data.decode()
    return out


class Stub:
    """A DIGITS-shaped HTTP server on 127.0.0.1; ``routes[(method, path)]`` answers requests."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], object] = {}
        self.calls: list[tuple[str, str, dict, str]] = []  # method, path, form, cookie
        self.models: list[dict] = []
        self.datasets: list[dict] = []
        self.routes[("GET", "/index.json")] = lambda form: (
            200,
            {"version": "6.1.1", "datasets": self.datasets, "models": self.models},
        )
        self.routes[("POST", "/login")] = lambda form: (302, "", {"Set-Cookie": "username=fred"})
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def handle_one(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                ctype = self.headers.get("Content-Type", "")
                form = parse_form(ctype, body) if ctype.startswith("multipart/") else {}
                path = self.path.split("?")[0]
                stub.calls.append((method, path, form, self.headers.get("Cookie", "")))
                route = stub.routes.get((method, path))
                if route is None:
                    answer = (404, {"error": {"message": "Not Found", "type": "NotFound"}})
                else:
                    answer = route(form)
                if answer is DROP:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, payload, *headers = answer
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for key, value in (headers[0] if headers else {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.handle_one("GET")

            def do_POST(self) -> None:
                self.handle_one("POST")

            def do_DELETE(self) -> None:
                self.handle_one("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self, path: str) -> list[dict]:
        return [form for method, p, form, _ in self.calls if method == "POST" and p == path]


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.server.shutdown()
    s.server.server_close()


def client(stub: Stub, **kw) -> DigitsClient:
    return DigitsClient(stub.url, username="fred", backoff=0.0, **kw)


JOB = {"id": "20160809-103210-ccbf", "name": "whale_sounds", "status": "Initialized"}
DATASETS = "/datasets/images/classification.json"
MODELS = "/models/images/classification.json"


def test_form_encoding_follows_wtforms_and_curl():
    body, ctype = encode_form(
        {"a": True, "b": False, "c": None, "learning_rate": [0.001, 0.01], "n": 5},
        {"textfile_train_images": ("train.txt", b"/x/a.png 0\n")},
    )
    form = parse_form(ctype, body)
    # a checked box is "y"; an unchecked one is left out, which WTForms reads as false
    assert form == {
        "a": "y",
        "learning_rate": "0.001,0.01",
        "n": "5",
        "textfile_train_images": ("train.txt", b"/x/a.png 0\n"),
    }


def test_quotes_and_non_ascii_in_names_reach_a_flask_server_intact():
    """Field and file names with a double quote, a non-ASCII letter and a semicolon, parsed by
    Werkzeug (the multipart parser DIGITS's Flask runs): every name and value arrives as sent."""
    from flask import Flask, jsonify, request
    from werkzeug.serving import make_server

    app = Flask("echo")

    @app.post("/echo")
    def echo():
        files = {k: [f.filename, f.read().decode()] for k, f in request.files.items()}
        return jsonify({"form": request.form.to_dict(), "files": files})

    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        c = DigitsClient(f"http://127.0.0.1:{http.server_port}", backoff=0.0)
        fields = {'say "hi"; x=1': 'a "quoted" välue', "baleine_é": "é"}
        files = {'image "file"': ('call "7"; é.png', "donnée".encode())}
        answer = c.json("POST", "/echo", fields=fields, files=files)
    finally:
        http.shutdown()
    assert answer == {
        "form": fields,
        "files": {'image "file"': ['call "7"; é.png', "donnée"]},
    }


def test_login_cookie_and_dataset_create(stub):
    stub.routes[("POST", DATASETS)] = lambda form: (200, JOB)
    c = client(stub)
    job = c.create_dataset({"dataset_name": "whale_sounds", "textfile_use_val": True})
    assert job == JOB
    assert stub.posts("/login") == [{"username": "fred"}]
    (method, path, form, cookie) = stub.calls[-1]
    assert (method, path, cookie) == ("POST", DATASETS, "username=fred")
    assert form == {"dataset_name": "whale_sounds", "textfile_use_val": "y", "username": "fred"}


def test_learning_rate_list_makes_one_job_per_value(stub):
    jobs = [
        {"id": f"20160809-10321{i}-ccbf", "name": f"m learning_rate:{lr}", "status": "Initialized"}
        for i, lr in enumerate((0.001, 0.01))
    ]
    stub.routes[("POST", MODELS)] = lambda form: (200, {"jobs": jobs})
    made = client(stub).create_models({"model_name": "m", "learning_rate": [0.001, 0.01]})
    assert made == jobs
    assert stub.posts(MODELS)[0]["learning_rate"] == "0.001,0.01"


def test_form_errors_name_each_field(stub):
    errors = {
        "errors": {
            "dataset": ["Not a valid choice"],
            "train_epochs": ["Number must be at least 1."],
        }
    }
    stub.routes[("POST", MODELS)] = lambda form: (400, errors)
    with pytest.raises(DigitsError) as e:
        client(stub).create_models({"model_name": "m"})
    text = str(e.value)
    assert "\n" not in text and e.value.status == 400
    assert "dataset: Not a valid choice" in text
    assert "train_epochs: Number must be at least 1." in text
    assert len(stub.posts(MODELS)) == 1  # a refused form is not resent


@pytest.mark.parametrize(
    ("status", "kind", "message"),
    [
        (401, "Unauthorized", "You must be logged in"),
        (403, "Forbidden", "Job is not running"),
        (404, "NotFound", "Job not found"),
        (500, "InternalServerError", "lmdb exploded"),
    ],
)
def test_error_json_becomes_one_line(stub, status, kind, message):
    error = {"error": {"message": message, "type": kind, "description": message}}
    stub.routes[("POST", "/jobs/x/abort")] = lambda form: (status, error)
    with pytest.raises(DigitsError) as e:
        client(stub).abort("x")
    text = str(e.value)
    assert e.value.status == status and "\n" not in text
    assert f"HTTP {status} {kind}: {message}" in text
    assert len(stub.posts("/jobs/x/abort")) == 1  # a POST is never retried


def test_unknown_status_is_an_error_though_http_200(stub):
    stub.routes[("GET", "/jobs/nope/status")] = lambda form: (200, {"error": "Job not found."})
    with pytest.raises(DigitsError, match="Job not found") as e:
        client(stub).status("nope")
    assert e.value.status == 404


def test_get_retries_with_backoff(stub):
    answers = iter(
        [(503, b"busy"), (500, {"error": {"message": "x", "type": "E"}}), (200, {"status": "Done"})]
    )
    stub.routes[("GET", "/jobs/a/status")] = lambda form: next(answers)
    assert client(stub).status("a") == {"status": "Done"}
    assert sum(1 for m, p, *_ in stub.calls if p == "/jobs/a/status") == 3


def test_get_gives_up_after_its_retries(stub):
    stub.routes[("GET", "/jobs/a/status")] = lambda form: (503, b"busy")
    with pytest.raises(DigitsError, match="HTTP 503"):
        client(stub, retries=2).status("a")
    assert sum(1 for m, p, *_ in stub.calls if p == "/jobs/a/status") == 3


def test_connection_refused_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    c = DigitsClient(f"http://127.0.0.1:{port}", retries=1, backoff=0.0)
    with pytest.raises(DigitsError, match="connection refused") as e:
        c.index()
    assert e.value.status == 0 and "\n" not in str(e.value)


def test_timeout_is_one_line(stub):
    def slow(form):
        time.sleep(1.0)
        return 200, {}

    stub.routes[("GET", "/index.json")] = slow
    with pytest.raises(DigitsError, match=r"no answer within 0\.2 s"):
        client(stub, timeout=0.2, retries=0).index()


def test_create_then_crash_is_found_by_name_not_resent(stub):
    def create_then_crash(form):
        stub.models.append(
            {"id": "20260101-000000-abcd", "name": form["model_name"], "status": "Running"}
        )
        return DROP

    stub.routes[("POST", MODELS)] = create_then_crash
    made = client(stub).create_models({"model_name": "whale_sounds_baseline"})
    assert [j["id"] for j in made] == ["20260101-000000-abcd"]
    assert len(stub.posts(MODELS)) == 1


def test_create_lost_and_absent_says_nothing_was_made(stub):
    stub.routes[("POST", MODELS)] = lambda form: DROP
    with pytest.raises(DigitsError, match="nothing was created"):
        client(stub).create_models({"model_name": "m"})
    assert len(stub.posts(MODELS)) == 1


def test_request_file_uploads_texts_and_dataset_by_name(stub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("net.prototxt").write_text('name: "n"\n')
    Path("model.toml").write_text(
        'model_name = "whalenet"\ndataset = "whale_native"\nmethod = "custom"\n'
        'custom_network = "<net.prototxt"\nlearning_rate = [0.01, 0.05]\nshuffle = true\n'
    )
    stub.datasets.append({"id": "20260101-000000-0001", "name": "whale_native", "status": "Done"})
    stub.routes[("POST", MODELS)] = lambda form: (200, {"jobs": [JOB, JOB]})
    request = read_request(Path("model.toml"))
    assert request.kind == "models" and request.name == "whalenet"
    assert len(submit(client(stub), request)) == 2
    form = stub.posts(MODELS)[0]
    assert form["dataset"] == "20260101-000000-0001"
    assert form["custom_network"] == 'name: "n"\n'
    assert (form["learning_rate"], form["shuffle"]) == ("0.01,0.05", "y")


def test_request_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text('dataset_name = "d"\ntextfile_train_images = "@missing.txt"\n')
    with pytest.raises(UpcallError, match=r"x\.toml: textfile_train_images: cannot read"):
        read_request(bad)
    bad.write_text('method = "textfile"\n')
    with pytest.raises(UpcallError, match="needs dataset_name"):
        read_request(bad)


# The form fields DIGITS 6 takes (digits/dataset/*forms.py, digits/model/*forms.py).
DATASET_FIELDS = set(
    "dataset_name group_name encoding resize_channels resize_width resize_height resize_mode "
    "backend compression method textfile_use_local_files textfile_train_images "
    "textfile_local_train_images textfile_train_folder textfile_use_val textfile_val_images "
    "textfile_local_val_images textfile_val_folder textfile_use_test textfile_test_images "
    "textfile_local_test_images textfile_test_folder textfile_shuffle textfile_labels_file "
    "textfile_local_labels_file".split()
)
MODEL_FIELDS = set(
    "dataset model_name group_name train_epochs snapshot_interval val_interval random_seed "
    "batch_size batch_accumulation solver_type rms_decay learning_rate lr_policy lr_step_size "
    "lr_step_gamma lr_multistep_values lr_multistep_gamma lr_exp_gamma lr_inv_gamma "
    "lr_inv_power lr_poly_power lr_sigmoid_step lr_sigmoid_gamma method framework "
    "standard_networks previous_networks pretrained_networks custom_network "
    "custom_network_snapshot select_gpu shuffle crop_size use_mean".split()
)


def test_digits_jobs_hold_only_digits_form_fields():
    files = sorted((ROOT / "digits_jobs").glob("*.toml"))
    assert len(files) >= 6
    for path in files:
        fields = tomllib.loads(path.read_text())
        known = DATASET_FIELDS if "dataset_name" in fields else MODEL_FIELDS
        assert set(fields) <= known, (path.name, set(fields) - known)
        assert path.stem in (ROOT / "digits_jobs" / "README.md").read_text()


def test_cli_list_and_one_line_errors(stub, capsys):
    stub.models.append(
        {"id": "20260101-000000-abcd", "name": "whale_sounds_baseline", "status": "Done"}
    )
    assert main(["digits", "list", "--digits-url", stub.url]) == 0
    assert "20260101-000000-abcd  Done         whale_sounds_baseline" in capsys.readouterr().out
    stub.routes[("GET", "/jobs/gone/status")] = lambda form: (200, {"error": "Job not found."})
    assert main(["digits", "status", "gone", "--digits-url", stub.url]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Job not found." in err


def test_submit_bad_files_and_urls_are_one_line(tmp_path):
    """`upcall digits submit` (the real command): a non-UTF-8 request file, a `<` file that is
    not text, and URLs that are no URLs are each one line, exit 1, no traceback."""
    import subprocess
    import sys

    good = tmp_path / "ds.toml"
    good.write_text('dataset_name = "d"\nmethod = "textfile"\n')
    latin = tmp_path / "latin1.toml"
    latin.write_bytes('dataset_name = "caf\u00e9"\n'.encode("latin-1"))
    (tmp_path / "net.bin").write_bytes(b"\xff\xfe\x00binary")
    binary = tmp_path / "binary.toml"
    binary.write_text(f'model_name = "m"\ncustom_network = "<{tmp_path / "net.bin"}"\n')
    unused = "http://127.0.0.1:9"  # never reached: the files are refused first
    cases = [
        ([str(latin), "--digits-url", unused], f"{latin}: not UTF-8 text (byte 19)"),
        ([str(binary), "--digits-url", unused], "custom_network: " + str(tmp_path / "net.bin")),
        ([str(good), "--digits-url", "notaurl"], "--digits-url 'notaurl': not an http://"),
        ([str(good), "--digits-url", "http://[::1"], "--digits-url 'http://[::1': not a URL"),
        ([str(good), "--digits-url", "http://host:port"], "--digits-url 'http://host:port'"),
        ([str(good), "--digits-url", "ftp://x"], "not an http:// or https:// URL"),
    ]
    for argv, expected in cases:
        done = subprocess.run(
            [sys.executable, "-m", "upcall", "digits", "submit", *argv],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        err = done.stderr.strip()
        assert done.returncode == 1 and len(err.splitlines()) == 1, (argv, err)
        assert expected in err and "Traceback" not in err, (argv, err)
