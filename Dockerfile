# Slim, non-root image of guardrail-service.
#
#   docker build -t guardrail-service:0.1.0 .
#   docker run --rm -p 50051:50051 -p 9464:9464 guardrail-service:0.1.0
#
# The ports below are the defaults of GUARDRAIL_PORT and GUARDRAIL_METRICS_PORT
# (service/settings.py); tests/deploy checks they stay in step.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY clients/python ./clients/python
# xds-protos ships an old OpenTelemetry protobuf module that can shadow the
# real one; reinstalling opentelemetry-proto keeps OTLP export working.
RUN python -m venv /opt/guardrail \
 && /opt/guardrail/bin/pip install . \
 && /opt/guardrail/bin/pip install --force-reinstall --no-deps \
      "opentelemetry-proto==$(/opt/guardrail/bin/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')" \
 && /opt/guardrail/bin/python -m compileall -q /opt/guardrail

FROM python:3.11-slim
LABEL org.opencontainers.image.title="guardrail-service" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it. The
# journal directory exists in the image so a volume mounted on it (compose)
# starts out owned by that user.
RUN groupadd --system --gid 10001 guardrail \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/guardrail \
      --create-home --shell /usr/sbin/nologin guardrail \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/guardrail/journal
COPY --from=build /opt/guardrail /opt/guardrail
# The SQLite default only suits a single container; set GUARDRAIL_DATABASE_URL
# to PostgreSQL for replicas. The journal keeps rows during a database outage.
ENV PATH="/opt/guardrail/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GUARDRAIL_LOG_FORMAT=json \
    GUARDRAIL_DATABASE_URL=sqlite:////var/lib/guardrail/guardrail.db \
    GUARDRAIL_SPEND_LOG_JOURNAL_PATH=/var/lib/guardrail/journal
USER 10001:10001
WORKDIR /var/lib/guardrail
EXPOSE 50051 9464
# grpc.health.v1 over the loopback; NOT_SERVING (draining) counts as unhealthy.
# Kubernetes uses its native gRPC probe instead (deploy/kubernetes).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["sh", "-c", "exec guardrail health --target 127.0.0.1:${GUARDRAIL_PORT:-50051}"]
# Exec form: the supervisor is PID 1 and receives SIGTERM itself; it turns
# health NOT_SERVING, waits GUARDRAIL_DRAIN_DELAY_S, finishes in-flight calls,
# flushes SpendLogs and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["guardrail"]
CMD ["serve"]
