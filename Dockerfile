# syntax=docker/dockerfile:1
# One image for every Hearth function; the build argument BIN picks the binary (the function's
# crate under functions/):
#
#   docker build --build-arg BIN=signup-hook -t <repo>/signup-hook:<tag> .
#
# cloudbuild.yaml runs this on Cloud Build (no Docker engine is needed locally). The dependency
# layer (cargo-chef) does not depend on BIN, so every function reuses the same cached layer.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# The recipe: Cargo manifests and lock file only, so it changes only when dependencies do.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Every workspace dependency, compiled once (release profile: thin LTO, stripped, panic=abort).
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
ARG BIN
RUN test -n "${BIN}" || { echo "build with --build-arg BIN=<function crate>" >&2; exit 1; } \
 && cargo build --release --locked -p "${BIN}" --bin "${BIN}" \
 && install -D -m 0755 "target/release/${BIN}" /out/function

# glibc + libgcc + CA certificates, no shell, no package manager; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/function /function
USER nonroot:nonroot
ENV PORT=8080
EXPOSE 8080
ENTRYPOINT ["/function"]
