# The image of the strata GitHub Action (action.yml): `strata action` and the few files it
# needs, on an empty base. Published by .github/workflows/release.yml; built and run by
# scripts/image and the image smoke test; see README.md, "The image".

# Rust 1.95.0: the toolchain the project is developed and tested with.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# .dockerignore lets in only what the build reads: the manifest, the lock file, src/,
# catalogue/ (compiled in with include_str!), benches/ (named in Cargo.toml) and
# scripts/image-root.
COPY . .
# rustls and gix only: no OpenSSL, no git; aws-lc builds with the image's gcc.
RUN cargo build --release --locked --bin strata \
    && scripts/image-root target/release/strata /image

# Nothing but what /image holds: the binary, the C library and loader it links, the CA
# bundle and /tmp (scripts/image-root). scripts/image stands a host-built /image in for
# the build stage (`--build-context build=DIR`), so both build this same file.
FROM scratch
LABEL org.opencontainers.image.source="https://github.com/strata-infra/strata" \
      org.opencontainers.image.description="strata: EC2 clusters as git-driven infrastructure (GitHub Action)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /image/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# No USER on purpose: GitHub runs a Docker action as root, with the checkout (owned by the
# runner's user) mounted at /github/workspace and HOME=/github/home; a non-root user could not
# write the step's output, summary and plan files there.
ENTRYPOINT ["/usr/local/bin/strata", "action"]
