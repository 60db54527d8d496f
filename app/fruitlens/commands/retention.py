"""`fruitlens retention`: storage limitation as an S3 lifecycle rule on the project's prefixes.

One rule per prefix: objects expire N days after creation, non-current versions (versioned
buckets) one day after they are replaced, and incomplete multipart uploads (invisible parts a
failed job may leave) are aborted after one day. The rule has exactly the shape of the IaC's
`k8s/aws/lifecycle.json` (a test compares them). Rules of the bucket on other prefixes are kept.
"""

from __future__ import annotations

import re
from typing import Any

from fruitlens.config import Config
from fruitlens.errors import UsageError
from fruitlens.outputs.storage import Storage

NONCURRENT_DAYS = 1
ABORT_MULTIPART_DAYS = 1


def normalize_prefix(prefix: str) -> str:
    cleaned = prefix.strip().lstrip("/")
    if not cleaned:
        raise UsageError("an empty --prefix would expire the whole bucket; name a prefix")
    return cleaned if cleaned.endswith("/") else cleaned + "/"


def rule_id(prefix: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", prefix).strip("-") or "root"
    return f"fruitlens-expire-{slug}"[:255]


def lifecycle_rule(prefix: str, days: int) -> dict[str, Any]:
    return {
        "ID": rule_id(prefix),
        "Status": "Enabled",
        "Filter": {"Prefix": prefix},
        "Expiration": {"Days": days},
        "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_DAYS},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
    }


def lifecycle_rules(prefixes: list[str], days: int) -> list[dict[str, Any]]:
    if days < 1:
        raise UsageError("--days must be at least 1")
    chosen = sorted({normalize_prefix(prefix) for prefix in prefixes})
    if not chosen:
        raise UsageError("give at least one --prefix")
    return [lifecycle_rule(prefix, days) for prefix in chosen]


def _rule_prefix(rule: dict[str, Any]) -> str | None:
    if "Prefix" in rule:
        return str(rule["Prefix"])
    return (rule.get("Filter") or {}).get("Prefix")


def retention_command(config: Config) -> dict[str, Any]:
    if not config.bucket:
        raise UsageError("--bucket is required")
    if config.days is None:
        raise UsageError("--days is required")
    bucket = config.bucket.removeprefix("s3a://").removeprefix("s3://").strip("/")
    ours = lifecycle_rules(config.prefix, config.days)
    storage = Storage(config)
    if not storage.bucket_exists(bucket):
        raise UsageError(f"bucket {bucket!r} does not exist or is not reachable")
    covered = {rule["Filter"]["Prefix"] for rule in ours}
    # A rule already on one of our prefixes (ours or the IaC's) is replaced, never doubled.
    kept = [rule for rule in storage.lifecycle_rules(bucket) if _rule_prefix(rule) not in covered]
    storage.put_lifecycle_rules(bucket, kept + ours)
    applied = storage.lifecycle_rules(bucket)
    missing = [rule["ID"] for rule in ours if rule["ID"] not in {r.get("ID") for r in applied}]
    if missing:
        raise UsageError(f"the bucket did not keep the rules {missing}")
    return {
        "command": "retention",
        "bucket": bucket,
        "days": config.days,
        "rules": ours,
        "other_rules_kept": len(kept),
    }
