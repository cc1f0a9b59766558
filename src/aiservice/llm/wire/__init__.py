"""Other public wire formats onto the gateway's chat format, as pure functions.

One module per API (the OpenAI Responses API in :mod:`.responses`, the Anthropic Messages
API in :mod:`.messages`); each turns a request body into a ``ChatRequest`` and chat
completions or chunks back into its own objects and events, with no I/O, so recorded
payloads test it alone.
"""
