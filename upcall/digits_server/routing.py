"""What every route of the server shares: DIGITS's JSON-or-HTML rule and the job lookup.

Facts followed (NVIDIA/DIGITS source): digits/utils/routing.py ``request_wants_json``: JSON when
the URL ends in ``.json`` or Accept prefers application/json; an unknown job id is 404 "Job not
found".
"""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import NotFound

from upcall.digits_server.jobs import JobRecord, JobStore


def wants_json() -> bool:
    """digits/utils/routing.py request_wants_json."""
    if request.path.endswith(".json"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and (
        request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def lookup(store: JobStore, job_id: str, kind: str | None = None) -> JobRecord:
    job = store.get(job_id)
    if job is None or (kind is not None and job.kind != kind):
        raise NotFound("Job not found")
    return job
