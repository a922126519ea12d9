"""Mutable state owned by one writer thread, published as immutable snapshots."""
