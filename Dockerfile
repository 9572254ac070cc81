# syntax=docker/dockerfile:1.7
#
# imdsr images. One file, one target per image:
#
#   gateway        FastAPI gateway (python slim, non-root, `serve` extra only, no torch)
#   triton-cpu     the gateway image + the committed CPU model repository, running the
#                  tritonserver that nvidia-pytriton ships (laptop clusters: kind, k3s)
#   triton         NVIDIA Triton for x86-64 GPUs (+ the CPU repository as a fallback)
#   triton-jetson  NVIDIA Triton for Jetson (iGPU, arm64)
#   export         builds TensorRT plans on an x86-64 GPU node (TensorRT container + `export` extra)
#   export-jetson  the same for Jetson (iGPU TensorRT container, arm64)
#
#   docker build --target gateway -t registry.example.com/imdsr/gateway:0.1.0 .
#   docker buildx build --platform linux/arm64 --target triton-jetson ... .
#
# Every base image is pinned here. A TensorRT plan loads only under the exact TensorRT build
# that made it, so each export image derives from the TensorRT NGC container of the SAME
# release as its Triton image and builds plans with that container's own trtexec:
#   gpu:    tritonserver:24.10-py3      + tensorrt:24.10-py3      (TensorRT 10.5.0.18)
#   jetson: tritonserver:24.08-py3-igpu + tensorrt:24.08-py3-igpu (TensorRT 10.3.0.26)
# `tensorrt_version` in export/serving.toml names that build; `imdsr export plans` refuses any
# other (tests/deploy/test_deploy_docker.py holds the three together). docs/DEPLOY.md says what was and
# was not exercised (these images were not built in CI).

# checkov:skip=CKV_DOCKER_7:Every FROM names a build arg whose default below is a pinned tag; checkov does not expand ARGs (tests/deploy/test_deploy_docker.py checks the tags).
ARG PYTHON_IMAGE=python:3.11.9-slim-bookworm
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3
ARG TRITON_JETSON_IMAGE=nvcr.io/nvidia/tritonserver:24.08-py3-igpu
ARG TENSORRT_IMAGE=nvcr.io/nvidia/tensorrt:24.10-py3
ARG TENSORRT_JETSON_IMAGE=nvcr.io/nvidia/tensorrt:24.08-py3-igpu

# ---------------------------------------------------------------------------------------
# source: the project's sources and an empty virtual environment (for serve-venv below)
# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS source
ARG PIP_VERSION=24.2
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install "pip==${PIP_VERSION}"
COPY pyproject.toml README.md* ./
COPY imdsr/ imdsr/
COPY training/ training/
COPY export/ export/
COPY service/ service/
COPY triton_host/ triton_host/
COPY bench/ bench/

# serve-venv: the project with its `serve` extra and nothing else
FROM source AS serve-venv
RUN /opt/venv/bin/pip install ".[serve]" \
 # the gateway never carries torch: fail the build if a dependency pulled it in
 && if /opt/venv/bin/python -c "import torch" 2>/dev/null; then \
      echo "torch leaked into the serve environment" >&2; exit 1; \
    fi

# ---------------------------------------------------------------------------------------
# gateway
# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS gateway
ARG IMDSR_VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="imdsr-gateway" \
      org.opencontainers.image.description="imdsr 4x super-resolution HTTP gateway (FastAPI) in front of Triton" \
      org.opencontainers.image.version="${IMDSR_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.com/imdsr" \
      org.opencontainers.image.vendor="imdsr"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMDSR_TRITON_URL=triton:8001
RUN groupadd --system --gid 10001 imdsr \
 && useradd --system --uid 10001 --gid imdsr --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin imdsr
COPY --from=serve-venv /opt/venv /opt/venv
WORKDIR /opt/imdsr
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["imdsr"]
CMD ["gateway", "--host", "0.0.0.0", "--port", "8080"]

# ---------------------------------------------------------------------------------------
# triton-cpu: the CPU model repository (Python backend + ONNX Runtime) served by the
# tritonserver binary that nvidia-pytriton ships; no NGC image, no GPU
# ---------------------------------------------------------------------------------------
FROM gateway AS triton-cpu
LABEL org.opencontainers.image.title="imdsr-triton-cpu" \
      org.opencontainers.image.description="Triton (from nvidia-pytriton) serving the imdsr CPU model repository"
COPY --chown=0:0 model_repository/ /opt/imdsr/model_repository/
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
ENTRYPOINT ["imdsr"]
CMD ["triton", "--host", "0.0.0.0", "--repo", "/opt/imdsr/model_repository", "--http-port", "8000", "--grpc-port", "8001", "--metrics-port", "8002"]

# ---------------------------------------------------------------------------------------
# native-repo: the committed CPU repository re-rendered for Triton's own CPU backends
# (`imdsr export native-repo`: torch-free, base dependencies only). Platform-independent
# files, so it runs natively on the build machine even for arm64 targets.
# ---------------------------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM ${PYTHON_IMAGE} AS native-repo
ARG PIP_VERSION=24.2
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY imdsr/ imdsr/
COPY training/ training/
COPY export/ export/
COPY service/ service/
COPY triton_host/ triton_host/
COPY bench/ bench/
COPY model_repository/ model_repository/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install "pip==${PIP_VERSION}" \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/imdsr export native-repo model_repository -o /native/openvino --runtime openvino \
 && /opt/venv/bin/imdsr export native-repo model_repository -o /native/onnxruntime --runtime onnxruntime

# ---------------------------------------------------------------------------------------
# triton: NVIDIA Triton for x86-64 GPUs. TensorRT plans arrive at run time in /models
# (built on the node by the `export` image); the committed CPU repository is the default.
# ---------------------------------------------------------------------------------------
FROM ${TRITON_IMAGE} AS triton
ARG IMDSR_VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="imdsr-triton" \
      org.opencontainers.image.description="NVIDIA Triton Inference Server with the imdsr model repository (x86-64 GPU)" \
      org.opencontainers.image.version="${IMDSR_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.com/imdsr" \
      org.opencontainers.image.vendor="imdsr"
USER 0:0
# The CPU repository on Triton's own OpenVINO backend (no Python stub, nothing to pip-install).
COPY --from=native-repo --chown=0:0 /native/openvino/ /opt/imdsr/model_repository/
# the same unprivileged uid as every imdsr image (files under /opt are world-readable)
ENV HOME=/tmp
USER 10001:10001
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
CMD ["tritonserver", "--model-repository=/opt/imdsr/model_repository", \
     "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002", "--strict-readiness=true"]

# ---------------------------------------------------------------------------------------
# triton-jetson: NVIDIA Triton for Jetson Orin (JetPack 6 = L4T r36, iGPU, linux/arm64)
# ---------------------------------------------------------------------------------------
FROM ${TRITON_JETSON_IMAGE} AS triton-jetson
ARG IMDSR_VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="imdsr-triton-jetson" \
      org.opencontainers.image.description="NVIDIA Triton Inference Server (iGPU) with the imdsr model repository (Jetson, arm64)" \
      org.opencontainers.image.version="${IMDSR_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.com/imdsr" \
      org.opencontainers.image.vendor="imdsr"
USER 0:0
# The CPU fallback on Triton's own ONNX Runtime backend (the Jetson images carry it).
COPY --from=native-repo --chown=0:0 /native/onnxruntime/ /opt/imdsr/model_repository/
ENV HOME=/tmp
USER 10001:10001
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
CMD ["tritonserver", "--model-repository=/opt/imdsr/model_repository", \
     "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002", "--strict-readiness=true"]

# ---------------------------------------------------------------------------------------
# onnx: ONNX graphs from the shipped weights (CPU torch, build time only, never shipped).
# ONNX does not depend on the platform, so this runs natively on the build machine even
# when the target is linux/arm64.
# ---------------------------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM ${PYTHON_IMAGE} AS onnx
ARG PIP_VERSION=24.2
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG VARIANTS="c16nla c4"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install "pip==${PIP_VERSION}" \
 && /opt/venv/bin/pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md* ./
COPY imdsr/ imdsr/
COPY training/ training/
COPY export/ export/
COPY service/ service/
COPY triton_host/ triton_host/
COPY bench/ bench/
RUN /opt/venv/bin/pip install ".[export]" \
 && mkdir -p /onnx \
 && for v in ${VARIANTS}; do \
      /opt/venv/bin/imdsr export onnx --variant "$v" -o /onnx/ || exit 1; \
    done

# ---------------------------------------------------------------------------------------
# export: builds TensorRT plans on an x86-64 GPU node (initContainer of the Triton pod).
# The TensorRT container of Triton's release, so builder and server share one TensorRT
# build; plans are built by its `trtexec` (IMDSR_PLAN_BUILDER=trtexec). The project runs on
# Ubuntu's Python 3.11 with CPU torch (`imdsr export repo` writes ONNX from the shipped
# weights); the ONNX of the shipped variants is in /opt/imdsr/onnx.
# ---------------------------------------------------------------------------------------
FROM ${TENSORRT_IMAGE} AS export
ARG TENSORRT_IMAGE
ARG IMDSR_VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=1970-01-01T00:00:00Z
ARG PIP_VERSION=24.2
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
LABEL org.opencontainers.image.title="imdsr-export" \
      org.opencontainers.image.description="Builds imdsr TensorRT plans and the Triton model repository on the GPU node" \
      org.opencontainers.image.version="${IMDSR_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.com/imdsr" \
      org.opencontainers.image.vendor="imdsr" \
      org.opencontainers.image.base.name="${TENSORRT_IMAGE}"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMDSR_ONNX_DIR=/opt/imdsr/onnx \
    IMDSR_PLAN_BUILDER=trtexec \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PATH=/opt/venv/bin:/usr/src/tensorrt/bin:/opt/tensorrt/bin:$PATH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Ubuntu's python3.11 tracks security updates within the release the base tag pins.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 imdsr \
 && useradd --system --uid 10001 --gid imdsr --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin imdsr
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY imdsr/ imdsr/
COPY training/ training/
COPY export/ export/
COPY service/ service/
COPY triton_host/ triton_host/
COPY bench/ bench/
RUN python3.11 -m venv /opt/venv \
 && /opt/venv/bin/pip install "pip==${PIP_VERSION}" \
 && /opt/venv/bin/pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
 && /opt/venv/bin/pip install ".[export]" \
 && rm -rf /src
COPY --from=onnx /onnx/ /opt/imdsr/onnx/
WORKDIR /opt/imdsr
USER 10001:10001
# A batch image: it runs to completion, there is nothing to probe.
HEALTHCHECK NONE
# Through NVIDIA's entrypoint, as the base image runs: it sets up CUDA forward compatibility
# on older drivers, which trtexec needs there (a pod's `command:` would skip it; use `args:`).
ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "imdsr"]
CMD ["export", "--help"]

# ---------------------------------------------------------------------------------------
# export-jetson: the same on Jetson Orin (JetPack 6 / L4T r36), from the iGPU TensorRT
# container of triton-jetson's release; plans are built with its `trtexec`.
# ---------------------------------------------------------------------------------------
FROM ${TENSORRT_JETSON_IMAGE} AS export-jetson
ARG TENSORRT_JETSON_IMAGE
ARG IMDSR_VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=1970-01-01T00:00:00Z
ARG PIP_VERSION=24.2
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
LABEL org.opencontainers.image.title="imdsr-export-jetson" \
      org.opencontainers.image.description="Builds imdsr TensorRT plans and the Triton model repository on a Jetson" \
      org.opencontainers.image.version="${IMDSR_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.com/imdsr" \
      org.opencontainers.image.vendor="imdsr" \
      org.opencontainers.image.base.name="${TENSORRT_JETSON_IMAGE}"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMDSR_ONNX_DIR=/opt/imdsr/onnx \
    IMDSR_PLAN_BUILDER=trtexec \
    PATH=/opt/venv/bin:/usr/src/tensorrt/bin:/opt/tensorrt/bin:$PATH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Ubuntu's python3.11 tracks security updates within the release the base tag pins.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 imdsr \
 && useradd --system --uid 10001 --gid imdsr --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin imdsr
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY imdsr/ imdsr/
COPY training/ training/
COPY export/ export/
COPY service/ service/
COPY triton_host/ triton_host/
COPY bench/ bench/
RUN python3.11 -m venv /opt/venv \
 && /opt/venv/bin/pip install "pip==${PIP_VERSION}" \
 && /opt/venv/bin/pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
 && /opt/venv/bin/pip install ".[export]" \
 && rm -rf /src
COPY --from=onnx /onnx/ /opt/imdsr/onnx/
WORKDIR /opt/imdsr
USER 10001:10001
HEALTHCHECK NONE
# Through NVIDIA's entrypoint, as the base image runs: it sets up CUDA forward compatibility
# on older drivers, which trtexec needs there (a pod's `command:` would skip it; use `args:`).
ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "imdsr"]
CMD ["export", "--help"]
