"""Helpers of the deployment tests (tests/test_deploy_*.py): tool paths, rendering, API server."""
