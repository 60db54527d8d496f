"""Property tests: whatever a setting's value, the flag, the environment and the --config file
give the same Config or the same refusal."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fruitlens import cli, config

HINTS = config.setting_types()
PARSER = cli.build_parser()
# Booleans take no value on the command line (--x / --no-x): checked separately below.
VALUED = [f for f in dataclasses.fields(config.Config) if HINTS[f.name] is not bool]
BOOLEANS = [f for f in dataclasses.fields(config.Config) if HINTS[f.name] is bool]

# Text any channel can carry: no NUL (environment), no surrogates (files are UTF-8).
# No wall-clock limit on a test or on drawing its data (Hypothesis's deadline and its too_slow
# health check): the lanes share two cores, and speed is measured in bench/, not asserted here.
UNTIMED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


def typed_text(item: dataclasses.Field[Any]) -> st.SearchStrategy[str]:
    """Values as a user types them: near the declared constraints, and arbitrary text."""
    meta = item.metadata
    kind = HINTS[item.name]
    near: list[st.SearchStrategy[str]] = [TEXT]
    if "choices" in meta:
        choices = list(meta["choices"])
        near.append(st.sampled_from(choices + [c.upper() for c in choices] + ["aes256"]))
    if kind in (int, int | None) or int in get_args(kind):
        near.append(st.integers(-(10**12), 10**12).map(str))
    words = list(config.words_of(kind))
    if words:
        near.append(st.sampled_from(words + [w.upper() for w in words] + [f" {w} " for w in words]))
    if kind in (float, float | None):
        near.append(st.floats(allow_nan=True, allow_infinity=True).map(repr))
        near.append(st.floats(-2, 2).map(str))
    if meta.get("uri") or meta.get("bucket"):
        bucket = st.from_regex(r"[A-Za-z0-9._-]{1,70}", fullmatch=True)
        near.append(bucket.map(lambda name: f"s3a://{name}/prefix" if meta.get("uri") else name))
    if item.name == "umask":
        near.append(st.from_regex(r"[0-9]{2,4}", fullmatch=True))
    if meta.get("repeat") or meta.get("positional"):
        # The environment splits lists on commas; one value without a comma is one item.
        return st.one_of(near).filter(lambda text: "," not in text and text != "")
    return st.one_of(near)


def outcome(build: Any) -> tuple[str, Any]:
    try:
        return "ok", build()
    except config.ConfigError as refused:
        return "refused", str(refused)


def channels(item: dataclasses.Field[Any], command: str, value: str, folder: Path) -> dict:
    repeat = item.metadata.get("repeat")
    settings_file = folder / "settings.json"
    settings_file.write_text(json.dumps({item.name: [value] if repeat else value}))

    def flag() -> config.Config:
        if item.metadata.get("positional"):
            argv = [command, "--", value]  # after "--", even "-x" is the argument itself
        elif item.metadata.get("count"):
            argv = [command] + [item.metadata["short"]] * int(value)  # -v -v is 2
        else:
            argv = [command, f"{config.flag_name(item.name)}={value}"]
        return config.build_config(command, vars(PARSER.parse_args(argv)), {})

    # What a flag cannot say is for the environment and the file alone: argparse drops a value
    # of exactly "--" (`--bucket=--`), its separator, before fruitlens sees it (a bucket name's
    # own strategy draws it too), and a counted flag says only a small non-negative number.
    speakable = value != "--" and (
        not item.metadata.get("count") or (value.isdecimal() and int(value) <= 5)
    )
    return {
        "flag": outcome(flag) if speakable else None,
        "environment": outcome(
            lambda: config.build_config(
                command, {"config": None}, {config.env_name(item.name): value}
            )
        ),
        "file": outcome(lambda: config.build_config(command, {"config": str(settings_file)}, {})),
    }


@pytest.mark.parametrize("item", VALUED, ids=lambda item: item.name)
@settings(UNTIMED, max_examples=40)
@given(data=st.data())
def test_flag_environment_and_file_agree(item, data):
    command = item.metadata["commands"][0]
    value = data.draw(typed_text(item), label=item.name)
    with tempfile.TemporaryDirectory() as folder:
        seen = channels(item, command, value, Path(folder))
    assert seen["flag"] in (None, seen["environment"]), seen
    assert seen["environment"] == seen["file"], seen
    status, built = seen["file"]
    if status == "ok":  # an accepted value satisfies every declared constraint
        config.check_value(item, getattr(built, item.name))


@pytest.mark.parametrize("item", BOOLEANS, ids=lambda item: item.name)
@pytest.mark.parametrize("value", [True, False])
def test_boolean_flag_environment_and_file_agree(item, value, tmp_path):
    command = item.metadata["commands"][0]
    flag = config.flag_name(item.name) if value else "--no-" + config.flag_name(item.name)[2:]
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({item.name: value}))
    seen = {
        "flag": outcome(
            lambda: config.build_config(command, vars(PARSER.parse_args([command, flag])), {})
        ),
        "environment": outcome(
            lambda: config.build_config(
                command, {"config": None}, {config.env_name(item.name): str(value).lower()}
            )
        ),
        "file": outcome(lambda: config.build_config(command, {"config": str(settings_file)}, {})),
    }
    assert seen["flag"] == seen["environment"] == seen["file"], seen


# --- stored locations: no value makes a writer or `erase` leave the output ---------------------
PATH_PART = st.sampled_from(["..", ".", "", "features", "features@2", "x", "~", "\\..", "/"])
PATH_LIKE = st.lists(st.one_of(PATH_PART, TEXT), max_size=6).map("/".join)
STORED = st.one_of(
    PATH_LIKE,
    PATH_LIKE.map(lambda rest: "/" + rest),
    PATH_LIKE.map(lambda rest: "file:" + rest),
    PATH_LIKE.map(lambda rest: "s3a://fruits/" + rest),
    TEXT,
)


@settings(UNTIMED, max_examples=300)
@given(stored=STORED, recorded=st.one_of(st.none(), STORED))
def test_a_stored_location_never_leaves_the_run(stored, recorded):
    from fruitlens import paths
    from fruitlens.outputs import commit as write

    with tempfile.TemporaryDirectory() as folder:
        run = str(Path(folder) / "run")
        try:
            uri = write.resolve_stored(run, stored, recorded)
        except write.ManifestError:
            return
        assert paths.inside(uri, run) and paths.normalized(uri) != paths.normalized(run)


@settings(UNTIMED, max_examples=200)
@given(name=STORED)
def test_a_writer_never_puts_a_file_outside_the_output(name):
    from fruitlens import paths
    from fruitlens.outputs import commit as write
    from fruitlens.outputs.storage import Storage

    with tempfile.TemporaryDirectory() as folder:
        output = str(Path(folder) / "out")
        commit = write.OutputCommit(output, Storage(config.Config(output=output)))
        try:
            uri = commit.put_bytes(name, b"{}", "application/json")
        except write.ManifestError:
            return
        assert paths.inside(uri, output)
