"""The server's plain HTML pages: the job list with each model's curves, a job, the login form.

The pages are Jinja2 templates (``templates/*.html``, autoescaped by Flask) with no scripts and
no external resources, so they load in any browser (and in headless Chromium, which the tests
use) without console errors; images are only linked when the file exists (a model's
curves.png, written by upcall's run loop). Call these inside a request (``render_template``).
"""

from __future__ import annotations

import time

from flask import render_template

from upcall.digits_server.jobs import JobRecord, JobStore


def login_page(message: str = "") -> str:
    return render_template("login.html", message=message)


def _has_curves(store: JobStore, job_id: str) -> bool:
    return (store.folder(job_id) / "curves.png").exists()


def home_page(store: JobStore, entries: list[dict]) -> str:
    """Every job, newest first: datasets, then models with their curves."""
    rows = []
    for e in entries:
        kind = "datasets" if e["type"].endswith("Dataset") else "models"
        rows.append(
            e
            | {
                "kind": kind,
                "submitted": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["submitted"])),
                "curves": kind == "models" and _has_curves(store, e["id"]),
            }
        )
    return render_template("home.html", jobs_dir=str(store.dir), rows=rows)


def job_page(store: JobStore, job: JobRecord) -> str:
    history = [(s, time.strftime("%H:%M:%S", time.localtime(t))) for s, t in job.history]
    return render_template(
        "job.html", job=job, history=history, has_curves=_has_curves(store, job.id)
    )
