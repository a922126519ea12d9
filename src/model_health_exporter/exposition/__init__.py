"""Serving what the exporter knows: Prometheus metrics and an HTTP API."""
