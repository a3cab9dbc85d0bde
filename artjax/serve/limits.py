"""The service's connection limits, the same whatever HTTP server is in front (uvicorn with
artjax's protocol, or Ray Serve's proxy): idle keep-alive seconds, the largest request head,
the most open connections."""

KEEP_ALIVE_S = 5
MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS = 256
