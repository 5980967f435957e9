"""guardrail-service: a gRPC guardrail service for LLM gateways."""

__version__ = "0.1.0"
