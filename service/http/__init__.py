"""The HTTP surface of the service role: health, metrics, AsyncAPI, the /v1 API, the status page."""
