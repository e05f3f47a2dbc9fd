# The controller image. No container engine exists on the development machine, so this is
# not built or tested there; the e2e suite runs the same binary as a local process.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin approval-controller

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/approval-controller /approval-controller
USER nonroot
ENTRYPOINT ["/approval-controller"]
