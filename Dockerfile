# syntax=docker/dockerfile:1
# Multi-stage build of the pdscore service: a Rust build stage, then a slim runtime that runs as a non-root user.
# (There is no Docker engine on the development machines; this file is kept correct by review.)

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that code changes do not rebuild them: compile against empty crate roots.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY models/Cargo.toml models/Cargo.toml
COPY actors/Cargo.toml actors/Cargo.toml
COPY nats/Cargo.toml nats/Cargo.toml
COPY benches/load/Cargo.toml benches/load/Cargo.toml
RUN mkdir -p src models/src actors/src nats/src benches/load/src tests/api \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs models/src/lib.rs actors/src/lib.rs nats/src/lib.rs \
 && echo 'fn main() {}' > benches/load/src/main.rs \
 && mkdir -p models/src/bin \
 && for f in benches/http_stack.rs benches/models.rs tests/api/main.rs models/src/bin/train.rs models/src/bin/evaluate.rs; do \
      echo 'fn main() {}' > "$f"; done \
 && cargo build --release --locked --bin pdscore \
 && rm -rf src models/src actors/src nats/src benches/load/src
COPY . .
# Make sure the real sources are newer than the placeholder build.
RUN touch src/main.rs src/lib.rs models/src/lib.rs actors/src/lib.rs nats/src/lib.rs \
 && cargo build --release --locked --bin pdscore

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
