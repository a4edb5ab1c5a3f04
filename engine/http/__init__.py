"""The engine's one HTTP listener: health checks, Prometheus metrics, the web console and
the enrichment API, served by aiohttp on the engine's event loop."""
