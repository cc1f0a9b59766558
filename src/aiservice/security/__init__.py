"""API keys, rate limits, SSRF guard and log redaction."""
