# ins-engine in a container: docker build -t ins-engine . && docker run -p 2575:2575 -p 8080:8080
#   -v ins-engine-var:/srv/ins-engine/var ins-engine
# The store, outbox folders and the console's users file live in the var/ volume; the engine
# runs as an unprivileged user. Secrets (INS_ENGINE_PKCS12_PASSWORD, INS_ENGINE_API_TOKEN...)
# come from the environment, never from the image.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
RUN python -m venv /opt/ins-engine \
    && /opt/ins-engine/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 ins-engine \
    && useradd --system --uid 10001 --gid ins-engine --home-dir /srv/ins-engine --shell /usr/sbin/nologin ins-engine \
    && mkdir -p /srv/ins-engine/var /srv/ins-engine/routes \
    && chown ins-engine:ins-engine /srv/ins-engine/var \
    && chmod 0750 /srv/ins-engine/var
COPY --from=build /opt/ins-engine /opt/ins-engine
COPY deploy/container.toml /srv/ins-engine/routes/engine.toml
ENV PATH=/opt/ins-engine/bin:$PATH \
    PYTHONUNBUFFERED=1
WORKDIR /srv/ins-engine
USER 10001:10001
VOLUME ["/srv/ins-engine/var"]
EXPOSE 2575 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4)"]
ENTRYPOINT ["ins-engine"]
CMD ["run", "--config", "/srv/ins-engine/routes/engine.toml"]
