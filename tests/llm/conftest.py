from tests.support.llm_servers import sdk_for, upstream_servers, upstreams

__all__ = ["sdk_for", "upstream_servers", "upstreams"]
