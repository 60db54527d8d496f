"""Fault injection for the reliability tests (issue 7): an S3 proxy and a Python worker hook."""
