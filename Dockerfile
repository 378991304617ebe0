# sidepush: a push sidecar for legacy backends.
#   docker build -t sidepush:0.1.0 .          (or: podman build -t sidepush:0.1.0 .)
#   docker run --read-only -p 8080:8080 \
#       -v "$PWD/config/minimal.yaml:/etc/sidepush/sidepush.yaml:ro" sidepush:0.1.0
# Port 8080: clients (subscriptions, health, the proxied app). The publish listener
# (127.0.0.1:8081 by default) and an admin listener (metrics.listen) are for the pod only.

# ---- build: the same script CI runs --------------------------------------------------
FROM debian:12 AS build
WORKDIR /src
# The dependencies first, so that an edit of the sources does not install them again.
COPY .ci/deps .ci/deps
RUN .ci/deps build
COPY . .
RUN .ci/build build-release --buildtype=release -Db_ndebug=true

# ---- runtime: the binary and its shared libraries only -----------------------------------
FROM debian:12-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="sidepush" \
      org.opencontainers.image.description="Realtime push (SSE, WebSocket, long-poll) sidecar for request/response backends" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="debian:12-slim"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libevent-core-2.1-7 libevent-extra-2.1-7 libevent-openssl-2.1-7 libcurl4 libyaml-0-2 libjansson4 libssl3 \
        libhiredis0.14 zlib1g ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
           /usr/share/doc/* /usr/share/man/*
COPY --from=build /src/build-release/cmd/sidepush /usr/local/bin/sidepush
COPY config/minimal.yaml /etc/sidepush/sidepush.yaml
# A numeric, non-root user (Kubernetes' runAsNonRoot can check it). sidepush
# writes nothing to disk, so a read-only root filesystem is fine.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/sidepush"]
CMD ["--config", "/etc/sidepush/sidepush.yaml"]
