# Prometheus from Debian's package on the debootstrapped base that deploy/docker/build-images.sh
# imports (orderflow/debian:<suite>): no registry needed. Debian bookworm ships Prometheus 2.42.
# The configuration is mounted at /etc/prometheus (deploy/prometheus), the TSDB on a volume at
# /prometheus.
ARG BASE_IMAGE=orderflow/debian:bookworm
FROM ${BASE_IMAGE}
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
# Unpinned: the suite is fixed by the base, and a pin would break on every Debian security update.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o prometheus -g prometheus /prometheus
# The package's system user: its uid is assigned at install time, so it has no fixed number.
# hadolint ignore=DL3066
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
# bash's /dev/tcp: the base has no curl or wget.
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /-/ready HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ status _ <&3 && [ \"$status\" = 200 ]"]
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
