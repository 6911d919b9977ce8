"""``upcall digits ...``: talk to a DIGITS server (submit, status, list, classify, abort, delete),
or run upcall's own DIGITS-compatible server (``serve``)."""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from upcall.errors import UpcallError

HELP = "submit requests to a DIGITS server (digits_jobs/*.toml), query it, or serve its API"
URL_ENV = "UPCALL_DIGITS_URL"  # the default --digits-url
# sub-commands kept in other packages: name -> module with HELP, configure(parser), run(args),
# named here, not imported, so the client package stays below the server it starts
ELSEWHERE: dict[str, str] = {"serve": "upcall.digits_server.command"}


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def client_parser(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument(
            "--digits-url",
            default=os.environ.get(URL_ENV, "http://127.0.0.1:5000"),
            metavar="URL",
            help=f"the DIGITS server (default ${URL_ENV}, else http://127.0.0.1:5000)",
        )
        p.add_argument("--digits-user", default="upcall", metavar="NAME", help="DIGITS login")
        p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="per request")
        return p

    p = client_parser("submit", "send request files (a dataset or a model each) to DIGITS")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE", help="digits_jobs/*.toml")
    p.add_argument("--wait", action="store_true", help="wait until each job is done")
    p = client_parser("status", "a job's status")
    p.add_argument("job_id", metavar="JOB_ID")
    client_parser("list", "the server's datasets and models")
    p = client_parser("classify", "classify images with a model job")
    p.add_argument("job_id", metavar="MODEL_ID")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG files (uploaded)")
    p.add_argument(
        "--server-paths",
        action="store_true",
        help="the images are paths on the server (classify_many); default: upload each",
    )
    for name, what in (("abort", "stop a running job"), ("delete", "delete a job")):
        p = client_parser(name, what)
        p.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    for name, module_name in ELSEWHERE.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(p)


def run(args: argparse.Namespace) -> int:
    if args.action in ELSEWHERE:
        return importlib.import_module(ELSEWHERE[args.action]).run(args)
    from upcall.digits.client import DigitsClient

    client = DigitsClient(args.digits_url, username=args.digits_user, timeout=args.timeout)
    return ACTIONS[args.action](client, args)


def _submit(client, args) -> int:
    from upcall.digits.jobfile import read_request, submit

    requests = [read_request(f) for f in args.files]  # every file checked before any is sent
    for request in requests:
        for job in submit(client, request):
            print(f"{job['id']}  {job.get('status', ''):<11}  {job['name']}  ({request.path})")
            if args.wait:
                status = client.wait(job["id"], desc=job["name"])
                print(f"{job['id']}  {status}")
                if status != "Done":
                    raise UpcallError(f"{client.url}: job {job['id']} ({job['name']}) {status}")
    return 0


def _status(client, args) -> int:
    answer = client.status(args.job_id)
    error = f"  error: {answer['error']}" if answer.get("error") else ""
    print(f"{args.job_id}  {answer.get('status')}  {answer.get('name')}{error}")
    return 0


def _list(client, args) -> int:
    index = client.index()
    for kind in ("datasets", "models"):
        print(f"{kind}:")
        for job in index.get(kind, []):
            print(f"  {job['id']}  {job.get('status', ''):<11}  {job.get('name', '')}")
    return 0


def _classify(client, args) -> int:
    if args.server_paths:
        found = client.classify_many(args.job_id, "".join(f"{p}\n" for p in args.images))
    else:
        found = {str(p): client.classify_one(args.job_id, p) for p in args.images}
    for image, predictions in found.items():
        print(f"{image}: " + ", ".join(f"{label} {pct:.2f}%" for label, pct in predictions))
    return 0


def _abort(client, args) -> int:
    for job_id in args.job_ids:
        print(f"{job_id}: {client.abort(job_id).strip() or 'aborted'}")
    return 0


def _delete(client, args) -> int:
    for job_id in args.job_ids:
        print(f"{job_id}: {client.delete(job_id).strip() or 'deleted'}")
    return 0


ACTIONS = {
    "submit": _submit,
    "status": _status,
    "list": _list,
    "classify": _classify,
    "abort": _abort,
    "delete": _delete,
}
