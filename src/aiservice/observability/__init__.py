"""Structured JSON logging with request/execution context, and Prometheus metrics."""
