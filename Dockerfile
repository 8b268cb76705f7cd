# syntax=docker/dockerfile:1
# Multi-stage build of the pdscore service: a Rust build stage, then a slim runtime that runs as a non-root user.
# (There is no Docker engine on the development machines. The build stages' commands were run in a copy of the
# repository: `cargo chef prepare`, then `cargo chef cook --no-build` on the recipe alone, then the release build
# of that skeleton, which resolved every manifest and target and began compiling the dependencies.)

# The dependencies are built from a recipe of the workspace's manifests and lock file (cargo-chef, made for this
# layer caching): code changes do not rebuild them, and no list of the workspace's targets is kept here by hand.
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin pdscore
COPY . .
RUN cargo build --release --locked --bin pdscore

FROM debian:bookworm-slim AS runtime
# The upload and key directories exist, owned by the service user: a named volume mounted on one starts with
# its ownership (on a path the image lacks, it would come up owned by root, and the service could not write).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/pdscore --create-home pdscore \
 && install -d -o pdscore -g pdscore -m 0750 /var/lib/pdscore/uploads /var/lib/pdscore/keys
COPY --from=build /src/target/release/pdscore /usr/local/bin/pdscore
COPY --from=build --chown=pdscore:pdscore /src/models /opt/pdscore/models
WORKDIR /var/lib/pdscore
USER pdscore:pdscore
ENV LISTEN_ADDR=0.0.0.0:8080 \
    PDSCORE__APPLICATION__LOG_FORMAT=json \
    PDSCORE__MODELS__DIR=/opt/pdscore/models/artifacts \
    PDSCORE__STORAGE__DIR=/var/lib/pdscore/uploads
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health/live || exit 1
ENTRYPOINT ["pdscore"]
CMD ["serve"]
