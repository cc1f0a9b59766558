"""Shared state (memory, Redis, DynamoDB), the LLM response cache, coalescing and rate limits."""
