"""The one upstream HTTP transport for providers, orchestrator steps and webhooks.

* :mod:`.session` - aiohttp sessions (one per pool and event loop), tuned keep-alive and
  pool limits, no proxies or cookies;
* :mod:`.guard` - the SSRF check inside the connector, on the address connected to;
* :mod:`.client` - the orchestrator's guarded client (no redirects, answers read in
  full up to a bound);
* :mod:`.errors` - what a failed exchange was (timeout, connect, protocol);
* :mod:`.retry` - the one retry loop (jittered backoff, ``Retry-After``);
* :mod:`.auth` - the one auth-header protocol (provider keys, step auth, webhook signing);
* :mod:`.lines` - the lines of a streamed answer;
* :mod:`.limits` - how much of an answer is read (whole bodies, streamed lines).

Nothing is imported here: :mod:`.retry`, :mod:`.auth` and :mod:`.limits` load no HTTP
library.
"""
