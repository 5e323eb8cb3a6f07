"""Adapters to third-party data pipeline frameworks; each module needs its own optional extra."""
