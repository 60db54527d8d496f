"""Under spark-submit the job builds its own s3a and committer settings, and executors get them.

On Kubernetes the Spark Operator runs spark-submit in the driver pod with none of these settings
(neither the chart nor an overlay restates them): the job creates the SparkSession itself
(session.start_session) from its config file. This test runs it the same way on this machine:
spark-submit with a local-cluster master, so the executor is a JVM of its own that writes the
data through s3a to the moto server the test starts. Had the settings set on the builder not
reached it, it would have gone to AWS (no endpoint, no credentials here) and failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyspark
import pytest
import yaml

from fruitlens import jars
from support import jvm

REGION = "eu-west-3"
JOB = """
import sys
from fruitlens import config, session
cfg = config.build_config("run", {"config": sys.argv[1]}, environ={})
spark = session.start_session(cfg)
spark.range(0, 1000, numPartitions=4).write.parquet(cfg.output + "/numbers")
print("rows", spark.read.parquet(cfg.output + "/numbers").count())
"""


@pytest.mark.spark
@pytest.mark.s3
@pytest.mark.slow
def test_settings_built_by_the_job_reach_the_executors(s3_server: Any, tmp_path: Path) -> None:
    bucket = s3_server.make_bucket("submitted")
    settings = {
        "output": f"s3a://{bucket}/run",
        "region": REGION,
        "s3_endpoint": s3_server.endpoint,
        # Not Hadoop's default chain: the executor finds the key only through this setting.
        "s3_credentials_provider": (
            "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
        ),
        "sse": "s3",
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(settings))
    (tmp_path / "job.py").write_text(JOB)
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    # On Spark's class path, as in the image (docker/Dockerfile puts them in /opt/spark/jars),
    # not --jars: the executor would fetch the 558 MB AWS SDK bundle from the driver. Spark's
    # SLF4J API first, as a fruitlens session has it (jars.driver_class_path).
    classpath = os.pathsep.join(str(jar) for jar in jars.driver_class_path(jars.ensure_jars()))
    proc = subprocess.run(
        [str(spark_submit), "--master", "local-cluster[1,1,1024]",
         "--driver-class-path", classpath,
         "--conf", f"spark.executor.extraClassPath={classpath}",
         # A small run's JVM (support.jvm), in the driver as in the executor's JVM of its own.
         "--conf", jvm.DRIVER_OPTIONS,
         "--conf", f"spark.executor.extraJavaOptions={jvm.SMALL_RUN_JVM}",
         str(tmp_path / "job.py"), str(tmp_path / "job.yaml")],
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "rows 1000" in proc.stdout
    client = s3_server.client()
    success = client.get_object(Bucket=bucket, Key="run/numbers/_SUCCESS")["Body"].read()
    assert json.loads(success)["committer"] == "magic"
    parts = client.list_objects_v2(Bucket=bucket, Prefix="run/numbers/part-")["Contents"]
    assert parts
    for part in parts:
        head = client.head_object(Bucket=bucket, Key=part["Key"])
        assert head["ServerSideEncryption"] == "AES256", part["Key"]
