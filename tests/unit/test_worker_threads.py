"""How many TensorFlow threads a featurize task gets, and how many tasks start the Python
workers early, from the session's Spark settings."""

from __future__ import annotations

import os

import pytest

from fruitlens.pipeline.featurize import tensorflow_threads, warm_up_tasks


@pytest.mark.parametrize(
    ("settings", "threads"),
    [
        # Laptop: a task per core, and each worker may use its neighbour's idle core.
        ({"spark.master": "local[2]"}, 2),
        ({"spark.master": "local[2,3]"}, 2),  # with task retries
        ({"spark.master": "local[1]"}, 1),
        ({"spark.master": "local"}, 1),
        ({"spark.master": "local[8]"}, 2),  # twice the task's cores, not all eight
        ({"spark.master": "local[8]", "spark.task.cpus": "2"}, 4),
        # Kubernetes: the executor's cores bound it (the chart's default executor has 2).
        ({"spark.master": "k8s://https://kubernetes.default.svc", "spark.executor.cores": "2"}, 2),
        ({"spark.master": "k8s://https://kubernetes.default.svc"}, 1),  # Spark's default: 1
        (
            {
                "spark.master": "k8s://https://kubernetes.default.svc",
                "spark.executor.cores": "4",
                "spark.task.cpus": "4",
            },
            4,  # never fewer than the task owns
        ),
    ],
)
def test_a_task_gets_twice_its_cores_within_its_executor(settings: dict[str, str], threads: int):
    assert tensorflow_threads(settings) == threads


def test_local_star_counts_this_machines_cores():
    expected = min(os.cpu_count() or 1, 2)
    assert tensorflow_threads({"spark.master": "local[*]"}) == expected


@pytest.mark.parametrize(
    ("settings", "tasks"),
    [
        ({"spark.master": "local[2]"}, 1),  # one executor: the driver's probe keeps a core
        ({"spark.master": "local[*]"}, 1),
        ({"spark.master": "local"}, 1),
        (
            {
                "spark.master": "k8s://https://kubernetes.default.svc",
                "spark.executor.instances": "3",
            },
            3,
        ),
        ({"spark.master": "k8s://https://kubernetes.default.svc"}, 1),  # dynamic: not known yet
    ],
)
def test_the_python_workers_start_with_one_task_per_executor(settings: dict[str, str], tasks: int):
    assert warm_up_tasks(settings) == tasks
