# llm-judge container image.
#
#   docker build -t llm-judge .
#   docker run --rm -p 8080:8080 -e OPENAI_API_KEY llm-judge
#
# Two stages: the Rust toolchain builds the binary; the runtime image is Debian slim with the
# binary, the CA bundle and a non-root user, and no toolchain.

# The toolchain: Rust 1.90 or newer (the workspace's rust-version: what the lockfile's crates need).
# Pin it with --build-arg RUST_VERSION=1.90.
ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /build

# Dependencies first, in their own layer: it is rebuilt only when Cargo.toml or Cargo.lock change.
# A dummy lib + bin stands in for the real sources so that `cargo build` compiles every dependency.
# The workspace also lists the benchmark stand-in; its manifest (with a placeholder main) is
# enough for cargo to resolve the workspace, and only the service is built.
COPY Cargo.toml Cargo.lock ./
COPY crates/metrics/Cargo.toml crates/metrics/Cargo.toml
COPY crates/chat/Cargo.toml crates/chat/Cargo.toml
COPY crates/providers/Cargo.toml crates/providers/Cargo.toml
COPY crates/pool/Cargo.toml crates/pool/Cargo.toml
COPY crates/judge/Cargo.toml crates/judge/Cargo.toml
COPY crates/work/Cargo.toml crates/work/Cargo.toml
COPY crates/fleet/Cargo.toml crates/fleet/Cargo.toml
COPY bench/mock-provider/Cargo.toml bench/mock-provider/Cargo.toml
RUN mkdir -p src bench/mock-provider/src \
    && for c in metrics chat providers pool judge work fleet; do \
         mkdir -p crates/$c/src && echo '// placeholder for the dependency layer' > crates/$c/src/lib.rs; \
       done \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > bench/mock-provider/src/main.rs \
    && echo '// placeholder for the dependency layer' > src/lib.rs \
    && cargo build --release --locked -p llm-judge \
    && rm -rf src crates/*/src
COPY crates ./crates
COPY src ./src
RUN touch src/main.rs src/lib.rs crates/*/src/lib.rs \
    && cargo build --release --locked -p llm-judge \
    && objcopy --compress-debug-sections=zlib target/release/llm-judge /usr/local/bin/llm-judge \
    && /usr/local/bin/llm-judge --version


FROM debian:bookworm-slim

# TLS roots for the provider APIs (rustls reads the system bundle). The bundle comes from the
# builder, which has Debian bookworm's ca-certificates package installed: same release, same
# content, and no apt-get layer here (nothing to pin, no package lists left behind).
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

RUN groupadd --system --gid 10001 llm-judge \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin llm-judge \
    && mkdir -p /var/lib/llm-judge \
    && chown 10001:10001 /var/lib/llm-judge

COPY --from=builder /usr/local/bin/llm-judge /usr/local/bin/llm-judge
# The health probe is a bash script (bash is part of the slim image): see the script's header.
COPY deploy/docker/healthcheck.sh /usr/local/bin/llm-judge-healthcheck

ENV LLM_JUDGE_LISTEN=0.0.0.0:8080 \
    LLM_JUDGE_LOG_FORMAT=json \
    LLM_JUDGE_DATA_DIR=/var/lib/llm-judge \
    RUST_LOG=info \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# Persistent jobs (their items and results) live here: mount a volume to keep them across
# container restarts.
VOLUME ["/var/lib/llm-judge"]

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080

# No curl in this image and no health subcommand in the binary: the probe speaks HTTP/1.0 to
# /healthz over bash's /dev/tcp (deploy/docker/healthcheck.sh). It fails while nothing listens.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/llm-judge-healthcheck", "/healthz"]

# SIGTERM (docker stop, Kubernetes) starts a graceful shutdown: /readyz turns 503, in-flight
# requests finish. Give it time: `docker stop -t 60`, terminationGracePeriodSeconds: 60.
STOPSIGNAL SIGTERM
ENTRYPOINT ["llm-judge"]
CMD ["serve"]
