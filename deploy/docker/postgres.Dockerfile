# PostgreSQL from Debian's packages on the debootstrapped base that deploy/docker/build-images.sh
# imports (orderflow/debian:<suite>): no registry needed. The entrypoint (postgres-entrypoint.sh)
# initialises the data directory on first start from POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB (the password is required; there is no default) and runs the server as `postgres`.
ARG BASE_IMAGE=orderflow/debian:bookworm
FROM ${BASE_IMAGE}
ARG PG_MAJOR=15
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
# Unpinned: the suite is fixed by the base, and a pin would break on every Debian security update.
# create_main_cluster = false: no cluster from the package's postinst, the entrypoint makes one.
# hadolint ignore=DL3008
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "postgresql-${PG_MAJOR}" \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PG_MAJOR=${PG_MAJOR} \
    PGDATA=/var/lib/postgresql/data
# The package's system user: its uid is assigned at install time, so it has no fixed number.
# hadolint ignore=DL3066
USER postgres
EXPOSE 5432
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=5 \
    CMD ["/bin/bash", "-c", "/usr/lib/postgresql/$PG_MAJOR/bin/pg_isready -q -h 127.0.0.1 -p 5432"]
# SIGTERM is PostgreSQL's "smart" shutdown, which waits for every session to end; the services'
# pooled connections never do, so `docker stop` would wait out the grace period and kill it.
# SIGINT is the "fast" shutdown: sessions are ended, a checkpoint written, a clean stop.
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
