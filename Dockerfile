# Floe's container image: a build stage and a small runtime stage.
#
#   just image            # = docker build -t floe:dev .
#   docker run --rm -e FLOE_STREAM=... -e FLOE_WAREHOUSE=s3://... -e FLOE_CATALOG=glue floe:dev
#
# The build stage runs `cargo build --release --locked`, the step `.ci/run`
# also runs (so a green CI means this image's binary builds), then strips it.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked
# The line tables (kept for profilers on a workstation) are ~180 MB of the
# ~230 MB binary; the image ships the other ~55 MB.
RUN strip --strip-debug target/release/floe

# distroless "cc": glibc, libgcc, CA certificates and nothing else (no shell,
# no package manager). Floe links glibc dynamically; everything else is static.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /src/target/release/floe /usr/local/bin/floe
# Not root: any unprivileged uid works, the binary needs no file of its own
# (schema files are built in) and writes nothing locally with an s3:// warehouse.
USER 10001:10001
# Logs as JSON lines for CloudWatch; the operations port for /metrics and
# the health checks. Every other setting comes from FLOE_* variables.
# (The binary turns transparent huge pages off itself: src/main.rs.)
ENV FLOE_LOG_FORMAT=json \
    FLOE_METRICS_ADDR=0.0.0.0:9464
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/floe", "health"]
# `floe run` stops cleanly on SIGTERM: it commits what it read within
# FLOE_SHUTDOWN_DEADLINE (90s by default; ECS waits stopTimeout, 120s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/floe"]
CMD ["run"]
