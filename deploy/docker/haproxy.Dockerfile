# HAProxy from Debian's package on the debootstrapped base that deploy/docker/build-images.sh
# imports (orderflow/debian:<suite>): no registry needed. Debian bookworm ships HAProxy 2.6.
# The configuration is mounted at /etc/haproxy (deploy/haproxy; the package's own file is
# replaced). It balances the order API in the compose stack.
ARG BASE_IMAGE=orderflow/debian:bookworm
FROM ${BASE_IMAGE}
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
# Unpinned: the suite is fixed by the base, and a pin would break on every Debian security update.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
# The package's system user: its uid is assigned at install time, so it has no fixed number.
# hadolint ignore=DL3066
USER haproxy
EXPOSE 8080 8404
# SIGUSR1 is HAProxy's graceful stop: stop accepting, let requests in flight finish (bounded by
# hard-stop-after); SIGTERM would cut them.
STOPSIGNAL SIGUSR1
# bash's /dev/tcp: the base has no curl or wget. 8404/healthz is the config's monitor-uri.
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8404 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ status _ <&3 && [ \"$status\" = 200 ]"]
# Master-worker (-W) in the foreground (-db): `docker kill -s SIGUSR2` reloads the configuration
# without dropping connections.
ENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db"]
CMD ["-f", "/etc/haproxy/haproxy.cfg"]
