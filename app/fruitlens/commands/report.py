"""`fruitlens report RUN [RUN2]`: a run's page regenerated from its stored outputs, or two runs
compared side by side; prints where to open it (a presigned HTTPS URL for S3)."""

from __future__ import annotations

from typing import Any

from fruitlens import paths
from fruitlens.config import Config
from fruitlens.errors import UsageError
from fruitlens.outputs import names, report_html, report_page
from fruitlens.outputs.commit import OutputCommit
from fruitlens.outputs.storage import Storage, local_path


def report_command(config: Config) -> dict[str, Any]:
    """Regenerate one run's page (committed with it), or compare two runs in a new page."""
    storage = Storage(config)
    runs = config.runs
    if not 1 <= len(runs) <= 2:
        raise UsageError("give one run (its --output folder) or two runs to compare")
    if len(runs) == 2 and not config.output:
        raise UsageError(f"comparing two runs: pass --output FOLDER for {names.COMPARISON_HTML}")
    data = [report_page.stored_data(run, storage, config.report_thumbnails) for run in runs]
    if len(runs) == 2:
        page = report_html.render_comparison(*data)
        target = paths.join(str(config.output), names.COMPARISON_HTML)
        storage.write_bytes(target, page.encode("utf-8"), report_html.CONTENT_TYPE)
    elif config.output and config.output.rstrip("/") != runs[0].rstrip("/"):
        target = paths.join(config.output, names.REPORT_HTML)
        page = report_html.render(data[0])
        storage.write_bytes(target, page.encode("utf-8"), report_html.CONTENT_TYPE)
    else:
        # Into the run itself: through its commit, so run.json names the page's digest.
        commit = OutputCommit.begin(runs[0], storage)
        commit.keep_previous()
        target = report_page.commit_page(data[0], commit)
        commit.finish(dict(commit.previous_document), [names.REPORT_HTML])
    return {"command": "report", "report": target, **open_link(target, storage, config)}


def open_link(target: str, storage: Storage, config: Config) -> dict[str, Any]:
    """How to open the page: a local path, or a presigned HTTPS URL (objects stay private)."""
    if not paths.is_s3(target):
        return {"open": local_path(target).resolve().as_uri()}
    url = storage.presigned_url(target, config.report_url_expiry, report_html.CONTENT_TYPE)
    return {"open": url, "expires_in_s": config.report_url_expiry}


def summary(document: dict[str, Any]) -> str:
    lines = [f"report  {document['report']}", f"open    {document['open']}"]
    if "expires_in_s" in document:
        lines.append(f"        (a presigned URL, valid {document['expires_in_s']} s)")
    return "\n".join(lines)
