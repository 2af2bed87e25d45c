# syntax=docker/dockerfile:1
# Two images from one build:
#   docker build --target operator -t <registry>/lrsweep-operator:0.1.0 .
#   docker build --target trainer  -t <registry>/lrsweep-trainer:0.1.0 .
# The operator image carries no torch (pyproject's core dependencies exclude it); the trainer
# image is the built-in trainer (`python -m lrsweep_trainer`) on a CUDA-capable PyTorch.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# The trainer's base: the official PyTorch *runtime* image. It ships torch built against
# CUDA 12.4 with cuDNN 9 and the CUDA runtime libraries, so trial pods use the node's GPU
# through the NVIDIA container toolkit (only the host driver is needed) and fall back to the
# CPU when no GPU is present. "runtime" rather than "devel": no compilers, a smaller image.
ARG TRAINER_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

# --- build: one wheel holding both packages (lrsweep and lrsweep_trainer) -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
# The images' dependencies as requirement files, from pyproject.toml alone: the layers that
# install them are rebuilt when the dependencies change, not at every change of the code.
RUN mkdir /deps && python -c "import tomllib; \
project = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
core, extras = project['dependencies'], project['optional-dependencies']; \
open('/deps/operator.txt', 'w').write('\n'.join(core + extras['operator']) + '\n'); \
open('/deps/trainer.txt', 'w').write('\n'.join(core + extras['trainer']) + '\n')"
COPY operator ./operator
COPY trainer ./trainer
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- operator: kopf and the engine, no torch ------------------------------------------------
FROM ${PYTHON_IMAGE} AS operator
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The [operator] extra (the Kubernetes clients), no torch: the image stays small and never
# pulls CUDA.
COPY --from=build /deps/operator.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
# The wheel comes by COPY (a small layer) rather than `RUN --mount=type=bind,from=build`:
# buildah (podman build) up to 1.28 mounts a stage that came from its layer cache empty.
COPY --from=build /wheels /wheels
RUN wheel="$(echo /wheels/lrsweep-*.whl)" && pip install "${wheel}[operator]" && rm -r /wheels
# A numeric user, so Kubernetes can verify runAsNonRoot without a passwd lookup.
RUN useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin lrsweep
USER 65532:65532
# 8080: the operator's /metrics; 8081: kopf's liveness endpoint /healthz.
EXPOSE 8080 8081
ENTRYPOINT ["lrsweep", "operator"]

# --- trainer: the built-in trainer on CUDA-enabled PyTorch ----------------------------------
FROM ${TRAINER_IMAGE} AS trainer
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The [trainer] extra: torch is already satisfied by the base image, so pip keeps its CUDA
# build and adds numpy and scikit-learn (whose bundled digits data the built-in tasks use).
COPY --from=build /deps/trainer.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=build /wheels /wheels
RUN wheel="$(echo /wheels/lrsweep-*.whl)" && pip install "${wheel}[trainer]" && rm -r /wheels
RUN useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin lrsweep
USER 65532:65532
WORKDIR /tmp
# The trial's Prometheus endpoint (LRSWEEP_METRICS_PORT, 9090 by default).
EXPOSE 9090
ENTRYPOINT ["python", "-m", "lrsweep_trainer"]
