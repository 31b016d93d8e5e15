# The operator image. `cargo xtask image` and the release workflow build a static binary per
# architecture with cargo first (one cached build, no toolchain in any layer) and pass
# `target/image` as the context; this file only places the binary in an empty base.
FROM scratch
ARG TARGETARCH=amd64
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="extension-server-operator" \
      org.opencontainers.image.description="Runs Kubernetes extension API servers and registers their APIServices" \
      org.opencontainers.image.source="https://github.com/aggregation-dev/extension-server-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY ${TARGETARCH}/extension-server-operator /extension-server-operator
USER 65532:65532
ENTRYPOINT ["/extension-server-operator"]
CMD ["run"]
