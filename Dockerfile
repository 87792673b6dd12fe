# The images of `make images` (scripts/build-images.sh), for those who build
# with Docker:
#   docker build --target operator  -t fairlead/operator:0.1.0 .
#   docker build --target dataplane -t fairlead/dataplane:0.1.0 .
# fairlead's own build and tests have no Docker: `make images` writes the same
# images (static musl binaries FROM scratch, same users, entrypoints and ports)
# with scripts/build-image.py, and that is what the tests load. This file is
# kept simple and is not built by CI.

FROM rust:1-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
# ring compiles C and assembly: with musl-gcc for this target.
ENV CC_x86_64_unknown_linux_musl=musl-gcc
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
      -p fairlead-operator --bin fairlead-operator \
      -p fairlead-dataplane --bin fairlead-dataplane \
 && mkdir -p /rootfs/etc /rootfs/tmp /rootfs/var/lib/fairlead \
 && chmod 1777 /rootfs/tmp \
 && cp target/x86_64-unknown-linux-musl/release/fairlead-operator \
       target/x86_64-unknown-linux-musl/release/fairlead-dataplane /rootfs/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group

FROM scratch AS operator
COPY --from=builder /rootfs/etc/ /etc/
COPY --from=builder /rootfs/tmp/ /tmp/
COPY --from=builder /rootfs/fairlead-operator /fairlead-operator
USER 65532:65532
EXPOSE 8080/tcp
ENTRYPOINT ["/fairlead-operator"]

# Root in the container: VRRP needs NET_ADMIN (virtual IPs) and NET_RAW (raw
# sockets, gratuitous ARP), and capabilities added for a non-root user are not
# effective without file capabilities. The manifests drop every other capability.
FROM scratch AS dataplane
COPY --from=builder /rootfs/etc/ /etc/
COPY --from=builder /rootfs/tmp/ /tmp/
COPY --from=builder /rootfs/var/ /var/
COPY --from=builder /rootfs/fairlead-dataplane /fairlead-dataplane
USER 0:0
EXPOSE 9443/tcp
ENTRYPOINT ["/fairlead-dataplane"]
