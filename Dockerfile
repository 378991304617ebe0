# sidepush: a push sidecar for legacy backends.
#   docker build -t sidepush .
#   docker run --read-only -p 8080:8080 -v "$PWD/config:/etc/sidepush:ro" sidepush
# Ports: 8080 clients (subscriptions, health, proxy); 8081 the backend's publish
# webhooks, bound to loopback by default so only containers of the pod reach it.

# ---- build: the same script CI runs --------------------------------------------------
FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN .ci/build build-release --buildtype=release -Db_ndebug=true

# ---- runtime: the binary and its shared libraries only -----------------------------------
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libevent-core-2.1-7 libevent-extra-2.1-7 libcurl4 libyaml-0-2 libjansson4 libssl3 \
        libhiredis0.14 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build-release/cmd/sidepush /usr/local/bin/sidepush
COPY config/minimal.yaml /etc/sidepush/sidepush.yaml
# A numeric, non-root user (Kubernetes' runAsNonRoot can check it). sidepush
# writes nothing to disk, so a read-only root filesystem is fine.
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/sidepush"]
CMD ["--config", "/etc/sidepush/sidepush.yaml"]
