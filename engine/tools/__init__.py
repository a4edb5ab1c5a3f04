"""Tools built on the route API: route tests, offline enrichment, the vigilance report, replay
of message files."""
