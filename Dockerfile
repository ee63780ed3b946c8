# A Noosphere node image: the same install as scripts/bootstrap, on Python 3.11.
# The node runs as the unprivileged user `noosphere` (uid 10001), never as root; the
# node home (keystore, config, data) is the /data volume, owned by that user.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git bubblewrap \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 noosphere \
    && useradd --system --uid 10001 --gid noosphere --create-home --home-dir /home/noosphere \
       --shell /usr/sbin/nologin noosphere \
    && install -d -o noosphere -g noosphere -m 0755 /opt/noosphere \
    && install -d -o noosphere -g noosphere -m 0700 /data
WORKDIR /opt/noosphere
COPY --chown=noosphere:noosphere . .
USER noosphere
RUN ./scripts/bootstrap
ENV PATH="/opt/noosphere/.venv/bin:$PATH" NOOSPHERE_HOME=/data
VOLUME /data
ENTRYPOINT ["noosphere"]
