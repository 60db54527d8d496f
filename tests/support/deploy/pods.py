"""The driver and executor pods as the Spark Operator and Spark would create them from a
SparkApplication, so pod-level tools (checkov, Pod Security admission in a server-side dry run)
can judge them: neither understands the SparkApplication's embedded pod specs."""

from __future__ import annotations

import re
from typing import Any

_UNITS = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def _mebibytes(jvm_size: str) -> int:
    match = re.fullmatch(r"(\d+)([kmgt])", jvm_size.lower())
    assert match, jvm_size
    return int(match.group(1)) * _UNITS[match.group(2)] // 2**20


def spark_pods(app: dict[str, Any]) -> list[dict[str, Any]]:
    spec = app["spec"]
    name = app["metadata"]["name"]
    pods = []
    for role in ("driver", "executor"):
        part = spec[role]
        mounted = {m["name"] for m in part.get("volumeMounts", [])}
        memory = _mebibytes(part["memory"]) + _mebibytes(part["memoryOverhead"])
        container = {
            "name": f"spark-kubernetes-{role}",
            "image": part.get("image", spec["image"]),
            "imagePullPolicy": spec.get("imagePullPolicy", "IfNotPresent"),
            "args": [role],
            "env": part.get("env", []),
            "volumeMounts": part.get("volumeMounts", []),
            "securityContext": part["securityContext"],
            # What Spark sets: request = cores, limit = coreLimit, memory = heap + overhead.
            "resources": {
                "requests": {"cpu": str(part["cores"]), "memory": f"{memory}Mi"},
                "limits": {"cpu": part["coreLimit"], "memory": f"{memory}Mi"},
            },
        }
        pod_spec: dict[str, Any] = {
            "serviceAccountName": part["serviceAccount"],
            "restartPolicy": "Never",
            "securityContext": part["podSecurityContext"],
            "containers": [container],
            "volumes": [v for v in spec.get("volumes", []) if v["name"] in mounted],
        }
        for key in ("nodeSelector", "tolerations"):
            if part.get(key):
                pod_spec[key] = part[key]
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-{role}",
                    "namespace": app["metadata"]["namespace"],
                    "labels": {**part.get("labels", {}), "spark-role": role},
                    "annotations": part.get("annotations", {}),
                },
                "spec": pod_spec,
            }
        )
    return pods
