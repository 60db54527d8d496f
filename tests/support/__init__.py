"""Helpers the tests import (conftest.py only defines fixtures): paths and dataset slices, the S3
server, the CLI runners, small images, output scanners, fault injectors, deployment harness."""
