"""Predictions pushed over HTTP: batches of records and payload-logger CloudEvents."""
