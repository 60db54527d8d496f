"""Helpers of the deployment tests (tests/deploy/): tool paths, rendering, API server."""
