# syntax=docker/dockerfile:1
#
# The tokenginx-host image: the host as one static (musl) binary, the default guest
# component, CA certificates and a dev-style config (config/container.yaml), on scratch,
# as user 65532:65532.
#
#   docker build -t tokenginx-host:0.1.0 .
#   docker run --rm -p 8080:8080 -e OAUTH_CLIENT_SECRET=$(openssl rand -hex 16) tokenginx-host:0.1.0
#
# The binary is built for the builder's own architecture (x86_64 or aarch64).
#
# From artifacts built elsewhere (no Rust image at hand), a directory holding
# tokenginx-host (static), tokenginx_guest.wasm and ca-certificates.crt replaces the
# `artifacts` stage, and the build stage is skipped:
#   docker build --build-context artifacts=DIR -t tokenginx-host:0.1.0 .
# docker/verify-image.sh does that with podman, then runs the image.

# Pin by digest (rust:1.95-slim-bookworm@sha256:...) for reproducible builds.
ARG RUST_IMAGE=rust:1.95-slim-bookworm

FROM ${RUST_IMAGE} AS build
# musl-gcc for ring's C and assembly; the CA bundle for the final image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add "$(uname -m)-unknown-linux-musl" wasm32-unknown-unknown
WORKDIR /src
COPY . .
# Registry and target directory persist between builds (BuildKit cache mounts), so a
# source change recompiles only the workspace's crates. The musl target links statically
# by default. Debug info is left out of the image's binary (the release profile's line
# tables would make it several times larger); symbols stay, so backtraces name functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git/db \
    --mount=type=cache,target=/src/target \
    set -eu; \
    target="$(uname -m)-unknown-linux-musl"; \
    export CARGO_PROFILE_RELEASE_DEBUG=false; \
    cargo build --release --locked --target wasm32-unknown-unknown -p tokenginx-guest; \
    cargo build --release --locked --target "$target" -p tokenginx-host; \
    mkdir /out; \
    cp "target/$target/release/tokenginx-host" \
       target/wasm32-unknown-unknown/release/tokenginx_guest.wasm \
       /etc/ssl/certs/ca-certificates.crt \
       /out/

# What the image ships, flat; `--build-context artifacts=DIR` replaces it.
FROM scratch AS artifacts
COPY --from=build /out/ /

FROM scratch
LABEL org.opencontainers.image.title="tokenginx-host" \
      org.opencontainers.image.description="OAuth 2.0 token service whose decisions a WebAssembly guest makes" \
      org.opencontainers.image.licenses="Apache-2.0"
# For TLS to Redis without tokenginx.tls.ca_file: the system roots are read from here.
COPY --from=artifacts /ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=artifacts /tokenginx-host /usr/local/bin/tokenginx-host
COPY --from=artifacts /tokenginx_guest.wasm /usr/local/lib/tokenginx/tokenginx_guest.wasm
COPY config/container.yaml /etc/tokenginx/config.yaml
# Files stay root's and read-only to the service; it writes nothing (log to stdout), so a
# read-only root filesystem works.
USER 65532:65532
EXPOSE 8080
# No HEALTHCHECK: scratch has no client to run one. Probe GET /health/live and
# GET /health/ready over HTTP from the orchestrator instead.
ENTRYPOINT ["/usr/local/bin/tokenginx-host"]
CMD ["serve", "--config", "/etc/tokenginx/config.yaml"]
