"""The server's plain HTML pages: the job list with each model's curves, a job, the login form.

No scripts and no external resources, so the pages load in any browser (and in headless
Chromium, which the tests use) without console errors; images are only linked when the file
exists (a model's curves.png, written by upcall's run loop).
"""

from __future__ import annotations

import time
from html import escape

from upcall.digits.jobs import JobRecord, JobStore

_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="data:,">
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; }}
.Done {{ color: #2a7; }} .Error, .Aborted {{ color: #c33; }} .Running {{ color: #27c; }}
img.curves {{ max-width: 480px; display: block; }}
</style></head><body>
"""
_TAIL = "</body></html>\n"


def _page(title: str, body: str) -> str:
    return _HEAD.format(title=escape(title)) + body + _TAIL


def login_page(message: str = "") -> str:
    note = f"<p class='Error'>{escape(message)}</p>" if message else ""
    return _page(
        "Login - upcall DIGITS",
        f"<h1>Login</h1>{note}<form method='post' action='/login'>"
        "<label>Username <input name='username' required></label> "
        "<button type='submit'>Login</button></form>",
    )


def _curves(store: JobStore, job_id: str) -> str:
    if (store.folder(job_id) / "curves.png").exists():
        return f"<img class='curves' src='/files/{job_id}/curves.png' alt='curves of {job_id}'>"
    return ""


def home_page(store: JobStore, entries: list[dict]) -> str:
    """Every job, newest first: datasets, then models with their curves."""
    rows = []
    for e in entries:
        kind = "datasets" if e["type"].endswith("Dataset") else "models"
        rows.append(
            f"<tr id='job-{e['id']}'><td><a href='/{kind}/{e['id']}'>{escape(e['name'])}</a></td>"
            f"<td>{e['id']}</td><td>{escape(e['type'])}</td>"
            f"<td class='{e['status']}'>{e['status']}</td><td>{e['progress']}%</td>"
            f"<td>{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e['submitted']))}</td>"
            f"<td>{_curves(store, e['id']) if kind == 'models' else ''}</td></tr>"
        )
    table = (
        "<table><tr><th>Name</th><th>Id</th><th>Type</th><th>Status</th><th>Progress</th>"
        "<th>Submitted</th><th>Curves</th></tr>" + "".join(rows) + "</table>"
        if rows
        else "<p>No jobs yet.</p>"
    )
    return _page(
        "upcall DIGITS",
        f"<h1>upcall DIGITS server</h1><p>Jobs folder: {escape(str(store.dir))}</p>"
        f"<p><a href='/login'>Login</a></p><h2>Jobs</h2>{table}",
    )


def job_page(store: JobStore, job: JobRecord) -> str:
    history = "".join(
        f"<li>{s} at {time.strftime('%H:%M:%S', time.localtime(t))}</li>" for s, t in job.history
    )
    error = f"<p class='Error'>{escape(job.error)}</p>" if job.error else ""
    return _page(
        job.name,
        f"<h1>{escape(job.name)}</h1><p>{job.id} · <span class='{job.status}'>{job.status}</span>"
        f"</p>{error}<ul>{history}</ul>{_curves(store, job.id)}<p><a href='/'>All jobs</a></p>",
    )
