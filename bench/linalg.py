"""`make bench-linalg`: the reduce stage's PCA fit with each BLAS/LAPACK this machine has.

The reduce stage fits `pipeline.reduce.pca_pipeline` (StandardScaler, then PCA) on 512-wide
VGG16 features. PCA's fit is one SVD of the 512 x 512 covariance (breeze, LAPACK's `dgesdd`)
through dev.ludovic.netlib, which loads `libblas.so.3` and `liblapack.so.3` (Debian's
alternatives decide which files those are) and falls back to its Java translation when they are
missing. Each candidate runs in a JVM of its own, `local[1]`, pointed at its library files by
netlib's `nativeLibPath` properties (or, for Java, at a library that does not exist), in
alternating rounds so that the machine's drift reaches all of them alike. The rows are seeded
random numbers with a low-rank structure, the same for every candidate, so every candidate must
find the same explained variance: checked, and reported.

Writes bench/results/linalg.json (--report): per candidate, the library files, the LAPACK class
netlib chose, each warm fit's seconds and their median, the ratio to the reference LAPACK, and
the CPU model and flags.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fruitlens.session import NETLIB
from run_bench import REPO, environment

FEATURES = 512  # VGG16's pooled feature width
# Debian's layout: one folder per implementation under the multiarch library folder, each with
# both sonames (the reference implementation keeps BLAS and LAPACK in two folders).
MULTIARCH = Path("/usr/lib") / (sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu")
NATIVE = {
    "reference": ("blas/libblas.so.3", "lapack/liblapack.so.3"),
    "openblas-serial": ("openblas-serial/libblas.so.3", "openblas-serial/liblapack.so.3"),
    "openblas-pthread": ("openblas-pthread/libblas.so.3", "openblas-pthread/liblapack.so.3"),
}


def java_options(candidate: str) -> str:
    if candidate == "java":
        # A library name that cannot load: netlib logs the failure and uses its Java code.
        return f"-D{NETLIB}.blas.nativeLib=none -D{NETLIB}.lapack.nativeLib=none"
    blas, lapack = (MULTIARCH / name for name in NATIVE[candidate])
    return f"-D{NETLIB}.blas.nativeLibPath={blas} -D{NETLIB}.lapack.nativeLibPath={lapack}"


def candidates() -> list[str]:
    present = [
        name for name, files in NATIVE.items() if all((MULTIARCH / file).exists() for file in files)
    ]
    return ["java", *present]


def fit_in_this_process(candidate: str, rows: int, fits: int, k: int) -> dict[str, Any]:
    import numpy as np
    from pyspark.ml.linalg import Vectors
    from pyspark.sql import SparkSession

    from fruitlens.pipeline.reduce import pca_pipeline
    from fruitlens.session import export_local_defaults

    export_local_defaults()  # as the job's local JVM: one OpenBLAS thread per call
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.extraJavaOptions", java_options(candidate))
        .getOrCreate()
    )
    rng = np.random.default_rng(0)
    low_rank = rng.standard_normal((rows, 16)) @ rng.standard_normal((16, FEATURES))
    matrix = low_rank + 0.1 * rng.standard_normal((rows, FEATURES))
    frame = spark.createDataFrame([(Vectors.dense(row),) for row in matrix], ["features"])
    frame = frame.cache()
    frame.count()
    seconds = []
    for _ in range(fits):
        start = time.perf_counter()
        model = pca_pipeline(k).fit(frame)
        seconds.append(round(time.perf_counter() - start, 4))
    lapack = spark.sparkContext._jvm.dev.ludovic.netlib.lapack.LAPACK.getInstance()
    explained = model.stages[-1].explainedVariance.toArray()
    spark.stop()
    return {
        "netlib_lapack": lapack.getClass().getSimpleName(),
        "fit_seconds": seconds,
        "explained_variance_top5": [round(float(value), 9) for value in explained[:5]],
    }


def run_child(candidate: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", candidate]
    command += ["--rows", str(args.rows), "--fits", str(args.fits), "--k", str(args.k)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600, help="rows per fit (the 1x Training)")
    parser.add_argument("--fits", type=int, default=6, help="fits per JVM; the first is warm-up")
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--report", type=Path, default=REPO / "bench/results/linalg.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(fit_in_this_process(args.child, args.rows, args.fits, args.k)))
        return

    names = candidates()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            runs[name].append(run_child(name, args))
            print(f"round {round_ + 1}: {name} {runs[name][-1]['fit_seconds']}", file=sys.stderr)

    results = {}
    for name, done in runs.items():
        warm = [seconds for run in done for seconds in run["fit_seconds"][1:]]
        results[name] = {
            "library_files": [] if name == "java" else [str(MULTIARCH / f) for f in NATIVE[name]],
            "netlib_lapack": sorted({run["netlib_lapack"] for run in done}),
            "warm_fit_seconds": warm,
            "median_warm_fit_seconds": statistics.median(warm),
            "explained_variance_top5": done[0]["explained_variance_top5"],
        }
    reference = results.get("reference", {}).get("median_warm_fit_seconds")
    for result in results.values():
        if reference:
            result["reference_over_this"] = round(reference / result["median_warm_fit_seconds"], 2)
    variances = {json.dumps(result["explained_variance_top5"]) for result in results.values()}
    report = {
        "what": "pca_pipeline(k).fit on seeded 512-wide rows, local[1], one JVM per candidate",
        "rows": args.rows,
        "k": args.k,
        "fits_per_jvm": args.fits,
        "rounds": args.rounds,
        "same_explained_variance": len(variances) == 1,
        "candidates": results,
        "environment": environment(),
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    medians = {name: result["median_warm_fit_seconds"] for name, result in results.items()}
    print(json.dumps({"median_warm_fit_seconds": medians, "same": len(variances) == 1}))


if __name__ == "__main__":
    main()
