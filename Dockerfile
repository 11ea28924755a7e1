# The image of the strata GitHub Action (action.yml): `strata action` on a minimal Debian.
# Published by .github/workflows/release.yml; see README.md, "The image".

# Rust 1.95.0: the toolchain the project is developed and tested with.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# .dockerignore lets in only what the build reads: the manifest, the lock file, src/,
# catalogue/ (compiled in with include_str!) and benches/ (named in Cargo.toml).
COPY . .
# rustls and gix only: no OpenSSL, no git; aws-lc builds with the image's gcc.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked --bin strata

# Same Debian release as the builder, so the binary finds the glibc it was linked against.
FROM debian:bookworm-20260803-slim
LABEL org.opencontainers.image.source="https://github.com/strata-infra/strata" \
      org.opencontainers.image.description="strata: EC2 clusters as git-driven infrastructure (GitHub Action)" \
      org.opencontainers.image.licenses="Apache-2.0"
# The CA bundle (from the builder's ca-certificates package) for TLS to AWS and GitHub,
# without apt in this stage.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/release/strata /usr/local/bin/strata
# No USER on purpose: GitHub runs a Docker action as root, with the checkout (owned by the
# runner's user) mounted at /github/workspace and HOME=/github/home; a non-root user could not
# write the step's output, summary and plan files there.
ENTRYPOINT ["/usr/local/bin/strata", "action"]
