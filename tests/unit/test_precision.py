"""--precision: each worker's choice from its CPU flags and the driver's refusal (the proof that
bf16 features are the float32 ones is tests/spark/test_vgg16.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fruitlens.commands.preflight import require_precision
from fruitlens.config import Config, build_config
from fruitlens.errors import UsageError
from fruitlens.pipeline import featurize
from fruitlens.pipeline.featurize import BF16, FP32, Cpu, choose_precision, this_cpu
from support.cli import invoke

# The flags lines of three EC2 families, as their /proc/cpuinfo reports them (trimmed to the
# flags that matter here plus neighbours): c6i (Ice Lake, no bf16), c7a (Zen 4, AVX512_BF16),
# c7i (Sapphire Rapids, AMX).
C6I = "fpu sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_vbmi2"
C7A = C6I + " avx512_bf16 avx512_vbmi avx512_bitalg avx512_vpopcntdq"
C7I = C7A + " avx512_fp16 amx_bf16 amx_tile amx_int8"


def cpuinfo(tmp_path: Path, model: str, flags: str, vendor: str = featurize.INTEL) -> Cpu:
    text = ""
    for processor in range(2):  # every core repeats its block; the first one is read
        text += (
            f"processor\t: {processor}\nvendor_id\t: {vendor}\nmodel name\t: {model}\n"
            f"flags\t\t: {flags}\n\n"
        )
    path = tmp_path / f"cpuinfo-{processor}-{len(flags)}-{vendor}"
    path.write_text(text)
    return this_cpu(str(path))


def test_cpuinfo_gives_model_vendor_and_bf16_flags(tmp_path: Path):
    c6i = cpuinfo(tmp_path, "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", C6I)
    c7a = cpuinfo(tmp_path, "AMD EPYC 9R14", C7A, featurize.AMD)
    c7i = cpuinfo(tmp_path, "Intel(R) Xeon(R) Platinum 8488C", C7I)
    assert c6i.model == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    assert (c6i.vendor, c7a.vendor) == ("GenuineIntel", "AuthenticAMD")
    assert (c6i.bf16_flags, c7a.bf16_flags, c7i.bf16_flags) == (
        (),
        ("avx512_bf16",),
        ("amx_bf16", "avx512_bf16"),
    )
    # run.json gets the flags that decide the arithmetic's speed, in a fixed order, and no other.
    assert c7i.reported_flags == tuple(f for f in featurize.REPORTED_FLAGS if f in C7I.split())
    assert {"amx_bf16", "amx_tile", "amx_int8", "avx512_bf16"} <= set(c7i.reported_flags)
    assert "fpu" not in c7i.reported_flags and "amx_bf16" not in c7a.reported_flags
    assert this_cpu(str(tmp_path / "absent")) == Cpu("unknown", frozenset(), "unknown")


def test_each_worker_resolves_the_precision_from_its_own_flags_and_vendor(tmp_path: Path):
    c6i = cpuinfo(tmp_path, "Ice Lake", C6I)
    c7a = cpuinfo(tmp_path, "Zen 4", C7A, featurize.AMD)
    c7i = cpuinfo(tmp_path, "Sapphire Rapids", C7I)
    # A Xeon whose hypervisor hides AMX: Intel's AVX512_BF16, c7a's flags on another vendor.
    xeon_without_amx = cpuinfo(tmp_path, "Emerald Rapids", C7A, featurize.INTEL)
    # auto: bf16 only where the flags AND a benchmark verdict for that vendor allow it.
    amx_verified = {("amx_bf16", featurize.INTEL): "a bench run that met every quality check"}
    assert choose_precision("auto", c7i, amx_verified)[0] == BF16
    assert choose_precision("auto", c7a, amx_verified)[0] == FP32
    assert choose_precision("auto", c6i, amx_verified)[0] == FP32
    amd_verified = {("avx512_bf16", featurize.AMD): "a bench run on a Zen 4"}
    assert choose_precision("auto", c7a, amd_verified)[0] == BF16
    precision, why = choose_precision("auto", xeon_without_amx, amd_verified)
    assert precision == FP32 and "not verified" in why and "GenuineIntel" in why
    # Without a verdict for its flags, auto stays float32, and says why.
    precision, why = choose_precision("auto", c7i, {})
    assert precision == FP32 and "not verified" in why
    # The shipped verdicts: AMX (Intel) and AMD's AVX512_BF16 pay; Intel's AVX512_BF16 does not.
    shipped = {c6i: FP32, c7a: BF16, c7i: BF16, xeon_without_amx: FP32}
    for cpu, expected in shipped.items():
        assert choose_precision("auto", cpu)[0] == expected, cpu
        assert choose_precision("fp32", cpu)[0] == FP32
    # bf16 asked: honoured on both bf16 families; an executor without bf16 falls back.
    assert choose_precision("bf16", c7i)[0] == choose_precision("bf16", c7a)[0] == BF16
    precision, why = choose_precision("bf16", c6i)
    assert precision == FP32 and "fell back to fp32" in why


def test_bf16_is_refused_before_spark_on_a_local_cpu_without_it(tmp_path: Path):
    c6i = cpuinfo(tmp_path, "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", C6I)
    local = Config(precision="bf16", master="local[2]")
    with pytest.raises(UsageError, match=r"neither amx_bf16 nor avx512_bf16.*--precision auto"):
        require_precision(local, c6i)
    require_precision(Config(precision="auto", master="local[2]"), c6i)  # auto: no refusal
    # On a cluster the executors' CPUs decide (they fall back with a reason in run.json).
    require_precision(Config(precision="bf16", master="k8s://https://eks:443"), c6i)


def test_precision_comes_from_flag_environment_and_file(tmp_path: Path):
    assert build_config("run", {}, {}).precision == "auto"
    settings = tmp_path / "job.yaml"
    settings.write_text("precision: fp32\n")
    from_file = build_config("run", {"config": str(settings)}, {})
    assert from_file.precision == "fp32"
    from_env = build_config("run", {"config": str(settings)}, {"FRUITLENS_PRECISION": "bf16"})
    assert from_env.precision == "bf16"
    flags_win = build_config("run", {"precision": "fp32"}, {"FRUITLENS_PRECISION": "bf16"})
    assert flags_win.precision == "fp32"


def test_an_unknown_precision_is_one_line_of_usage_error(tmp_path: Path):
    result = invoke("run", "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                     "--precision", "fp16")  # fmt: skip
    assert result.code == 2
    assert "--precision 'fp16' is not one of auto, fp32, bf16" in result.stderr
