"""Python client for guardrail-service."""
