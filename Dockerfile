# Slim image running `kabarin serve` as a non-root user.
#   docker build -t kabarin .
#   docker run -p 8080:8080 -v $PWD/config.yaml:/etc/kabarin/config.yaml:ro \
#     -v kabarin-data:/var/lib/kabarin -e KIRIMINAJA_TOKEN=... kabarin
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY sinks ./sinks
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/kabarin --create-home kabarin

USER kabarin
WORKDIR /var/lib/kabarin
EXPOSE 8080
# Mount the configuration at /etc/kabarin/config.yaml; point store.url at /var/lib/kabarin.
CMD ["kabarin", "serve", "--config", "/etc/kabarin/config.yaml", "--host", "0.0.0.0", "--port", "8080"]
