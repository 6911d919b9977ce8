"""A small client of DIGITS 6's REST/JSON API (image classification with Caffe), over requests.

Facts it follows (../shared/reference/digits-caffe.md §1e, read from NVIDIA/DIGITS):
- the login is a username cookie (``POST /login``, form ``username``, answered 302); create,
  abort and delete need it and answer 401 without it;
- form-validation errors are HTTP 400 ``{"errors": {field: [messages]}}``; every other error is
  ``{"error": {"message", "type", "description"}}`` with the HTTP status;
- a create returns ``{"id", "name", "status"}``; a learning-rate list makes one job per value and
  returns ``{"jobs": [...]}``, names suffixed `` learning_rate:<lr>``;
- ``GET /jobs/<unknown>/status`` answers 200 ``{"error": "Job not found."}``;
- the inference routes need no login and return lists of ``[label, percent]`` pairs.

Forms go out as multipart/form-data built by requests (field and file names quoted as browsers
do, so a ``"`` or a non-ASCII letter in a name reaches DIGITS intact). Every failure becomes one
:class:`UpcallError` line. GETs are retried with backoff (urllib3's ``Retry``); a POST is tried
again only when it never reached the server, and a create whose answer was lost is looked up by
name, so a job is never made twice.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import requests
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError
from urllib3.util import Retry

from upcall.errors import UpcallError
from upcall.progress import progress

DEFAULT_URL = "http://127.0.0.1:5000"
DATASET_ROUTE = "/datasets/images/classification.json"
MODEL_ROUTE = "/models/images/classification.json"
ACTIVE = ("Initialized", "Waiting", "Running")  # DIGITS's status names of an unfinished job
FINISHED = ("Done", "Aborted", "Error")
_RETRY_STATUS = (500, 502, 503, 504)  # a GET answered so is tried again

Fields = Mapping[str, object]  # form field -> str | number | bool | list (a repeated field)
Files = Mapping[str, tuple[str, bytes]]  # form field -> (file name, content)


class DigitsError(UpcallError):
    """A DIGITS answer that is an error; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class DigitsClient:
    """One DIGITS server for one user.

    Parameters
    ----------
    url : the server, e.g. ``http://127.0.0.1:5000``
    username : DIGITS's login (lowercase letters, digits, ``.-_``; no password)
    timeout : seconds to wait for each answer
    retries : further tries of a GET after a refused connection, a timeout or a 5xx answer
    backoff : urllib3's backoff factor: no wait before the first retry, then 2×, 4×, ... this
        many seconds (a ``Retry-After`` header is obeyed instead)
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        username: str = "upcall",
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.url = check_url(url)
        self.username = username
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        retry = Retry(
            total=retries,
            allowed_methods={"GET"},  # connection failures are retried for any method
            status_forcelist=_RETRY_STATUS,
            backoff_factor=backoff,
            raise_on_status=False,  # the last 5xx answer is reported as DIGITS gave it
        )
        adapter = requests.adapters.HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.cookies = self.session.cookies  # DIGITS's login cookie lands here
        self._logged_in = False

    # -- transport -----------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        fields: Fields | None = None,
        files: Files | None = None,
        query: Fields | None = None,
    ) -> bytes:
        """The body of DIGITS's answer; :class:`DigitsError` for an error answer or none.
        A GET is retried (``retries`` times, with backoff) when it got no answer or a 5xx."""
        url = self.url + path
        try:
            answer = self.session.request(
                method,
                url,
                params=query,
                files=multipart(fields, files) if fields or files else None,
                timeout=self.timeout,
                allow_redirects=False,  # the login's 302 is the answer (its cookie is kept)
            )
        except requests.RequestException as e:
            raise DigitsError(f"{method} {url}: {self._why(e)}") from None
        if answer.status_code >= 400:
            raise DigitsError(
                error_message(method, url, answer.status_code, answer.content),
                answer.status_code,
            )
        return answer.content

    def _why(self, e: requests.RequestException) -> str:
        """What went wrong, in words: no answer in time, refused, or cut off mid-answer."""
        reason = getattr(e.args[0], "reason", e.args[0]) if e.args else e
        if isinstance(e, requests.Timeout) or isinstance(reason, ReadTimeoutError | TimeoutError):
            return f"no answer within {self.timeout:g} s"
        if isinstance(reason, NewConnectionError):
            cause = reason.__cause__
            if isinstance(cause, ConnectionRefusedError):
                cause = "connection refused (is the DIGITS server running there?)"
            return f"cannot reach DIGITS: {getattr(cause, 'strerror', None) or cause or reason}"
        if isinstance(e, requests.ConnectionError):
            if isinstance(reason, ProtocolError) and reason.args:  # ("Connection aborted.", why)
                reason = reason.args[-1]
            return f"the connection broke: {reason or type(reason).__name__}"
        return f"cannot reach DIGITS: {e}"

    def json(self, method: str, path: str, **kwargs) -> object:
        body = self.request(method, path, **kwargs)
        try:
            value = json.loads(body)
        except ValueError:
            raise DigitsError(f"{method} {self.url}{path}: the answer is not JSON") from None
        if isinstance(value, dict) and isinstance(value.get("error"), str):
            # DIGITS's status route answers 200 {"error": "Job not found."}
            raise DigitsError(f"{method} {self.url}{path}: {value['error']}", 404)
        return value

    # -- login ---------------------------------------------------------------------------
    def login(self) -> None:
        """``POST /login``: DIGITS sets the ``username`` cookie (no password)."""
        self.request("POST", "/login", fields={"username": self.username})
        if not any(c.name == "username" for c in self.cookies):
            raise DigitsError(
                f"{self.url}/login: DIGITS set no login cookie for {self.username!r} (a username "
                "starts with a lowercase letter and holds only a-z 0-9 . - _)"
            )
        self._logged_in = True

    def _authed(self, method: str, path: str, fields: Fields | None = None, **kw) -> bytes:
        if not self._logged_in:
            self.login()
        return self.request(method, path, fields=fields, **kw)

    # -- jobs ----------------------------------------------------------------------------
    def index(self) -> dict:
        """``/index.json``: ``{version, jobs_dir, datasets: [...], models: [...]}``."""
        return self.json("GET", "/index.json")

    def find(self, name: str, kind: str) -> list[dict]:
        """The ``kind`` ("datasets" / "models") jobs named ``name``, oldest first."""
        jobs = [j for j in self.index().get(kind, []) if j.get("name") == name]
        return sorted(jobs, key=lambda j: j["id"])

    def status(self, job_id: str) -> dict:
        """``/jobs/<id>/status``: ``{status, name, type, error}``; 404 DigitsError if unknown."""
        return self.json("GET", f"/jobs/{job_id}/status")

    def job(self, job_id: str, kind: str = "models") -> dict:
        """``/<kind>/<id>.json``: the detailed job JSON."""
        return self.json("GET", f"/{kind}/{job_id}.json")

    def table_data(self, job_id: str) -> dict:
        """``/jobs/<id>/table_data.json``'s job: its outputs' last/min/max."""
        return self.json("GET", f"/jobs/{job_id}/table_data.json").get("job", {})

    def create_dataset(self, fields: Fields, files: Files | None = None) -> dict:
        """``POST /datasets/images/classification.json`` (``dataset_name`` in ``fields``)."""
        return self._create(DATASET_ROUTE, "datasets", str(fields["dataset_name"]), fields, files)[
            0
        ]

    def create_models(self, fields: Fields, files: Files | None = None) -> list[dict]:
        """``POST /models/images/classification.json``: one job per learning rate."""
        return self._create(MODEL_ROUTE, "models", str(fields["model_name"]), fields, files)

    def _create(
        self, route: str, kind: str, name: str, fields: Fields, files: Files | None
    ) -> list[dict]:
        if not self._logged_in:
            self.login()
        fields = {**fields, "username": self.username}
        try:
            answer = json.loads(self.request("POST", route, fields=fields, files=files))
        except DigitsError as e:
            if e.status not in (0, *_RETRY_STATUS):
                raise
            # The request may have reached DIGITS before the answer was lost: look, don't resend.
            found = self._made(kind, name)
            if not found:
                raise DigitsError(
                    f"{e}; DIGITS holds no {kind[:-1]} named {name!r}: nothing "
                    "was created, submit again"
                ) from None
            return found
        except ValueError:
            raise DigitsError(f"POST {self.url}{route}: the answer is not JSON") from None
        return answer["jobs"] if "jobs" in answer else [answer]

    def _made(self, kind: str, name: str) -> list[dict]:
        """The jobs a create of ``name`` made: ``name`` or, from a sweep, ``name learning_rate:x``."""
        jobs = self.index().get(kind, [])
        return [
            j
            for j in jobs
            if j.get("name") == name
            or j.get("name", "").startswith(name + " learning_rate:")
            or j.get("name", "").startswith(name + " batch_size:")
        ]

    def wait(self, job_id: str, *, poll: float = 2.0, desc: str = "") -> str:
        """Poll until the job is Done, Aborted or Error (a progress bar of the wait); returns
        the status name."""
        bar = progress(total=None, desc=desc or job_id, unit="poll")
        try:
            while True:
                answer = self.status(job_id)
                bar.set_postfix(status=answer.get("status"))
                bar.update()
                if answer.get("status") in FINISHED:
                    return answer["status"]
                time.sleep(poll)
        finally:
            bar.close()

    def abort(self, job_id: str) -> str:
        return self._authed("POST", f"/jobs/{job_id}/abort", {"username": self.username}).decode()

    def delete(self, job_id: str) -> str:
        return self._authed("DELETE", f"/jobs/{job_id}").decode()

    # -- files and inference -------------------------------------------------------------
    def file(self, path: str) -> bytes:
        """``/files/<path>``: a file under DIGITS's jobs folder, e.g. ``<id>/caffe_output.log``."""
        return self.request("GET", "/files/" + urllib.parse.quote(path))

    def download(self, model_id: str, *, epoch: float | None = None) -> bytes:
        """``/models/<id>/download.tar.gz``: prototxts, labels, mean, the snapshot, info.json."""
        query = {"epoch": epoch} if epoch is not None else None
        return self.request("GET", f"/models/{model_id}/download.tar.gz", query=query)

    def classify_one(self, model_id: str, image: Path | str, *, local: bool = False) -> list:
        """``[[label, percent], ...]`` for one image: uploaded, or (``local``) a server path."""
        route = "/models/images/classification/classify_one.json"
        if local:
            fields = {"job_id": model_id, "image_path": str(image)}
            answer = self.json("POST", route, fields=fields)
        else:
            files = {"image_file": (Path(image).name, _read(image))}
            answer = self.json("POST", route, fields={"job_id": model_id}, files=files)
        return answer["predictions"]

    def classify_many(self, model_id: str, image_list: str) -> dict[str, list]:
        """``{path: [[label, percent], ...]}`` for the lines ``path [label]`` of ``image_list``
        (server paths)."""
        route = "/models/images/classification/classify_many.json"
        files = {"image_list": ("image_list.txt", image_list.encode())}
        answer = self.json("POST", route, fields={"job_id": model_id}, files=files)
        return answer["classifications"]


def check_url(url: str) -> str:
    """``url`` without its trailing "/"; UpcallError unless it is an http(s) URL with a host."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - a bad port (":abc", ":99999") raises only when read
    except ValueError as e:  # "http://[::1": "Invalid IPv6 URL"
        raise UpcallError(f"--digits-url {url!r}: not a URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UpcallError(
            f"--digits-url {url!r}: not an http:// or https:// URL with a host, "
            "e.g. http://127.0.0.1:5000"
        )
    return url.rstrip("/")


def _read(path: Path | str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UpcallError(f"{path}: cannot read: {e.strerror or e}") from None


def form_value(value: object) -> str:
    """A form field's text: DIGITS's checkboxes take ``y`` (false: leave the field out)."""
    if isinstance(value, bool):
        return "y" if value else ""
    if isinstance(value, list | tuple):
        return ",".join(form_value(v) for v in value)  # DIGITS's MultiFloatField: "0.01,0.001"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def multipart(fields: Fields | None, files: Files | None) -> list[tuple[str, tuple]]:
    """The parts of a multipart/form-data body (what ``curl -F`` sends), in requests' ``files=``
    form: ``(name, (None, text))`` for a field, ``(name, (file name, content))`` for a file. A
    False checkbox is left out: WTForms reads a missing checkbox as false, an empty one too."""
    parts = [
        (name, (None, form_value(value)))
        for name, value in (fields or {}).items()
        if value is not None and value is not False
    ]
    return parts + [
        (name, (filename, content, "application/octet-stream"))
        for name, (filename, content) in (files or {}).items()
    ]


def encode_form(fields: Fields, files: Files) -> tuple[bytes, str]:
    """The body and Content-Type header :class:`DigitsClient` sends for ``fields`` and ``files``
    (for callers that post with another HTTP client)."""
    prepared = requests.Request("POST", DEFAULT_URL, files=multipart(fields, files)).prepare()
    return prepared.body, prepared.headers["Content-Type"]


def error_message(method: str, url: str, status: int, body: bytes) -> str:
    """One line for an error answer: each form field's messages (400), DIGITS's error JSON."""
    where = f"{method} {url}: HTTP {status}"
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("errors"), dict):
        problems = "; ".join(
            f"{field}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
            for field, msgs in value["errors"].items()
        )
        return f"{where}: DIGITS refused the form: {problems}"
    if isinstance(value, dict) and isinstance(value.get("error"), dict):
        err = value["error"]
        text = f"{err.get('type', 'Error')}: {err.get('message', '')}".rstrip(": ")
        if err.get("description") and err.get("description") != err.get("message"):
            text += f" ({err['description']})"
        return f"{where} {text}" + _hint(status)
    text = body.decode(errors="replace").strip().splitlines()
    return f"{where}" + (f": {text[0][:200]}" if text else "") + _hint(status)


def _hint(status: int) -> str:
    return {
        401: "; log in first (--digits-user NAME)",
        403: "; DIGITS does not allow it (another user's job, or not running)",
        404: "; no such job or file on this server",
    }.get(status, "")
