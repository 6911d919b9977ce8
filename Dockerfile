# upcall in Docker: the torch engine, and real Caffe 1.0 (the base image's own, else the bundled
# CPU build in a Debian 11 root). The install steps are the ones `make test` runs.
#
# CPU (the default base, Debian 12):
#   docker build -t upcall .
#   docker run --rm --privileged -v "$PWD/runs:/opt/upcall/runs" upcall          # make demo
# GPU (torch's CUDA wheels bring their own CUDA libraries; the host needs the NVIDIA driver and
# the NVIDIA Container Toolkit):
#   docker build -t upcall:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 .
#   (cu126: use a CUDA version pytorch.org lists for torch 2.13.0 and your driver)
#   docker run --rm --gpus all upcall:cuda bash benchmarks/gpu_check.sh
# For `--engine caffe --gpu 0` the base must bring a CUDA Caffe (pycaffe importable by python3,
# `caffe` on PATH): --build-arg BASE=<an image with CUDA Caffe>; docker-caffe.sh then uses it
# instead of installing the CPU one. upcall needs Python >= 3.11: pass --build-arg PYTHON=... if
# the base's python3 is older (NVIDIA's NGC Caffe images, e.g. nvcr.io/nvidia/caffe:20.03-py3,
# are Ubuntu 18.04 with Python 3.6: install a newer Python in them first).
# --privileged is only needed for the bundled Caffe (bubblewrap needs namespaces).
ARG BASE=debian:bookworm-slim
FROM ${BASE}

# the PyTorch wheel index: the CPU build by default (PyPI's Linux wheel pulls in CUDA, several
# GB); a CUDA index (https://download.pytorch.org/whl/cuXXX) for --gpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# the interpreter the virtualenv is made from (Python >= 3.11)
ARG PYTHON=python3

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv make ca-certificates debootstrap bubblewrap \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/upcall
COPY . .

ENV PIP_EXTRA_INDEX_URL=${TORCH_INDEX} \
    UPCALL_CAFFE_ROOT=/var/cache/upcall/caffe-bullseye
RUN make venv PYTHON=${PYTHON}
# the base image's Caffe (writes caffe.env) or the bundled CPU Caffe root
RUN bash scripts/docker-caffe.sh /opt/upcall/caffe.env "$UPCALL_CAFFE_ROOT"

ENV PATH=/opt/upcall/.venv/bin:$PATH
ENTRYPOINT ["/opt/upcall/scripts/docker-entrypoint.sh"]
CMD ["make", "demo"]
