"""End-to-end runs on the local cluster (`make e2e`)."""
