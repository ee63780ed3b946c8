# A Noosphere node image: the same install as scripts/bootstrap, on Python 3.11.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/noosphere
COPY . .
RUN ./scripts/bootstrap
ENV PATH="/opt/noosphere/.venv/bin:$PATH" NOOSPHERE_HOME=/data
VOLUME /data
ENTRYPOINT ["noosphere"]
