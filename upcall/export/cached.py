"""A job's net as an ONNX model for detection: exported once (:mod:`upcall.export.onnx`) and
cached, so ``upcall detect JOB`` runs ONNX Runtime's fully convolutional pass, the one an
exported ``.onnx`` model runs (the same detections), without importing torch again.

    JOB/.cache/detect-<digest>.onnx         the job folder, where it can be written
    $XDG_CACHE_HOME/upcall/onnx/...         else the user's cache folder (default ~/.cache)

``<digest>`` is the SHA-256 of the snapshot's weights and the deploy.prototxt
(:meth:`upcall.inference.model.Model.fingerprint`) and of everything the export holds beside
the graph (:func:`upcall.export.info.deploy_info`: mean, input spec, classes, source), so new
weights or a changed dataset description make a new file. Each file is written atomically
(detect runs exporting at the same time each write a whole file under the same name).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from upcall.errors import UpcallError
from upcall.export.info import deploy_info
from upcall.fsutil import atomic_write_bytes
from upcall.inference.model import NetModel
from upcall.inference.onnx.fcn import cache_root

VERSION = 1  # bump when the export changes: models cached by another version are made again


def cached_onnx(model: NetModel) -> Path | str:
    """The cached ONNX model of ``model``'s deploy net and weights (made now if missing), or
    why there is none (a layer ONNX cannot take, no onnx package, no writable folder)."""
    try:
        info = deploy_info(model)
        about = json.dumps(info.to_json(), sort_keys=True)
        key = hashlib.sha256(f"{model.fingerprint()[1]} {about}".encode()).hexdigest()
    except UpcallError as e:
        return str(e)
    name = f"detect-{key[:32]}-v{VERSION}.onnx"
    places = [cache_root() / "onnx"]
    if model.kind == "job" and model.path.is_dir():
        places.insert(0, model.path / ".cache")
    for folder in places:
        if (folder / name).is_file():
            return folder / name
    try:
        from upcall.export.onnx import onnx_bytes

        data = onnx_bytes(model.deploy, info)
    except UpcallError as e:
        return str(e)
    except ImportError as e:
        return f"exporting it to ONNX needs the {e.name} package" if e.name else str(e)
    except Exception as e:  # the exporter's own failure: torch runs the net instead
        first = (str(e).splitlines() or [""])[0]
        return f"the ONNX exporter failed ({type(e).__name__}: {first})"
    for folder in places:
        try:
            atomic_write_bytes(folder / name, data)
            return folder / name
        except OSError:
            continue
    return f"no writable folder for its ONNX model ({', '.join(map(str, places))})"
