# syntax=docker/dockerfile:1
# halo operator image: `docker build -t halo:0.1.0 .` (BuildKit, the default builder of
# Docker 23+, for the cache mounts). The chart's default image is halo:<appVersion>.
#
# Why musl and distroless/static rather than glibc and distroless/cc: the issue asks for a
# static binary, and a static binary needs no libc in the image, so the runtime layer is
# only ca-certificates, tzdata and /etc/passwd (~2 MB) with no shell and no package manager.
# The usual musl drawbacks do not bite here: aws-lc-sys (rustls' crypto) ships pre-generated
# bindings for x86_64- and aarch64-unknown-linux-musl and needs only musl-gcc; musl's slower
# malloc does not matter for a controller that reconciles a few apps per second; the API
# server is reached by IP (KUBERNETES_SERVICE_HOST) and musl resolves AWS endpoints fine.
#
# Multi-arch: the builder runs on the target platform (QEMU when cross-building with
# `docker buildx build --platform linux/arm64`), so the same native musl toolchain works on
# amd64 and arm64 (Graviton) without a cross linker.
#
# Pins: the Rust toolchain and both base images by tag. Pin them by digest as well
# (`image:tag@sha256:...`) in the release pipeline that can resolve digests.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
# musl-gcc compiles aws-lc-sys' C sources for the musl target.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the workspace needs to build the `halo` package (see .dockerignore).
COPY Cargo.toml Cargo.lock ./
COPY e2e/Cargo.toml e2e/Cargo.toml
COPY e2e/src e2e/src
COPY operator operator
# --locked: exactly Cargo.lock's crates; the cache mounts keep the registry and the target
# dir between builds without putting either into a layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    target="$(uname -m)-unknown-linux-musl"; \
    rustup target add "$target"; \
    cargo build --release --locked -p halo --bin halo --target "$target"; \
    install -D -m 0755 "target/$target/release/halo" /out/halo; \
    /out/halo --version

FROM gcr.io/distroless/static-debian12:nonroot
# Set by the release pipeline: --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD)
# --build-arg SOURCE=<repository URL>.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="halo" \
      org.opencontainers.image.description="Kubernetes operator that makes an application survive the loss of a node or an Availability Zone" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=builder --chown=0:0 /out/halo /halo
# The distroless "nonroot" user, numeric so the kubelet can enforce runAsNonRoot.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/halo"]
CMD ["run"]
