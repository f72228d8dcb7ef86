# The sessrec image: the rayproject/ray image plus the sessrec package. KubeRay runs it as
# head, worker, autoscaler and RayJob submitter, so it must keep the base image's `ray` CLI,
# Python and non-root user (uid 1000, gid 100). No secrets are baked in: S3 credentials and
# the Ray token arrive as environment variables at run time.
#
# Build:  docker build -t sessrec:0.1.0 .
# The Ray version of BASE_IMAGE must match RAY_VERSION in sessrec/k8s/defaults.py (the rayVersion of
# every RayCluster); a test checks that they agree.
# Pin the base by digest for reproducible builds: --build-arg BASE_DIGEST=sha256:... (the digest of
# BASE_IMAGE: `docker buildx imagetools inspect rayproject/ray:2.60.0-py311`). Empty: the tag alone.
ARG BASE_IMAGE=rayproject/ray:2.60.0-py311
ARG BASE_DIGEST=""
FROM ${BASE_IMAGE}${BASE_DIGEST:+@${BASE_DIGEST}}

LABEL org.opencontainers.image.title="sessrec" \
      org.opencontainers.image.description="Ray Tune sweeps of session-based (prod2vec) recommenders" \
      org.opencontainers.image.licenses="Apache-2.0"

# Install as the base image's user: its Python (/home/ray/anaconda3) belongs to that user.
USER 1000:100
WORKDIR /home/ray

# Only what the package build needs (.dockerignore keeps everything else out of the context).
COPY --chown=1000:100 pyproject.toml /tmp/sessrec/
COPY --chown=1000:100 sessrec /tmp/sessrec/sessrec

# Ray is pinned to the version already in the image, so pip cannot swap it for a newer one that
# pyproject's range would allow (head, workers and submitter must run the same Ray). The build
# ends with a smoke test of the command every RayJob runs.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN RAY_VERSION="$(python -c 'import ray; print(ray.__version__)')" \
 && pip install --no-cache-dir "/tmp/sessrec" "ray[tune,default]==${RAY_VERSION}" \
 && rm -rf /tmp/sessrec \
 && sessrec --help > /dev/null
