# The operator image: built with the same `cargo build --locked` as CI, run as non-root.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin extension-server-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/extension-server-operator /usr/local/bin/extension-server-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/extension-server-operator"]
CMD ["run"]
