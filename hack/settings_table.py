"""Print the README's settings table from the Config declaration (paste it into README.md)."""

from __future__ import annotations

import dataclasses

from fruitlens import config


def table() -> str:
    rows = [
        "| flag | environment | default | commands | meaning |",
        "|---|---|---|---|---|",
    ]
    for item in dataclasses.fields(config.Config):
        default = (
            item.default if item.default is not dataclasses.MISSING else item.default_factory()
        )
        shown = "—" if default is None else default
        meaning = item.metadata["help"].replace("|", "\\|")
        commands = ", ".join(item.metadata["commands"])
        flag = f"`{config.flag_name(item.name)}`"
        if item.metadata.get("positional"):
            flag = f"`{item.name.upper().rstrip('S')}…` (argument)"
        elif item.metadata.get("short"):
            flag = f"`{item.metadata['short']}`, {flag}"
        rows.append(
            f"| {flag} | `{config.env_name(item.name)}` | `{shown}` | {commands} | {meaning} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
