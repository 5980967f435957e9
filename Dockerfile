# Slim, non-root image of guardrail-service.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY clients/python ./clients/python
# xds-protos ships an old OpenTelemetry protobuf module that can shadow the
# real one; reinstalling opentelemetry-proto keeps OTLP export working.
RUN python -m venv /opt/guardrail \
 && /opt/guardrail/bin/pip install --no-cache-dir . \
 && /opt/guardrail/bin/pip install --no-cache-dir --force-reinstall --no-deps \
      "opentelemetry-proto==$(/opt/guardrail/bin/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/guardrail --create-home guardrail
COPY --from=build /opt/guardrail /opt/guardrail
ENV PATH="/opt/guardrail/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    GUARDRAIL_DATABASE_URL=sqlite:////var/lib/guardrail/guardrail.db
USER guardrail
WORKDIR /var/lib/guardrail
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["guardrail", "health", "--target", "127.0.0.1:50051"]
ENTRYPOINT ["guardrail", "serve"]
