"""`fruitlens submit`: hand a SparkApplication to the Kubeflow Spark Operator and wait for it.

Its flags describe a Kubernetes submission, not the job, so they are not Config settings. The
work on the cluster (render, create, follow, stream the driver log) is in sparkapp.py; this
turns its outcome into an exit status a scheduler or CI can act on.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import urllib3
import yaml

from fruitlens import sparkapp


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `fruitlens submit`; kept here so the CLI only wires the subcommand."""
    source = parser.add_argument_group("manifest source (chart by default)")
    source.add_argument(
        "--manifest",
        metavar="FILE",
        help="SparkApplication YAML to submit instead of rendering the chart; the settings "
        "ConfigMap it mounts goes too when the file holds it (other documents are ignored). "
        "Example: --manifest app.yaml",
    )
    source.add_argument(
        "--chart",
        metavar="DIR",
        default=None,
        help="Helm chart to render [env FRUITLENS_CHART; default: helm/fruitlens of this "
        "checkout]. Example: --chart ./helm/fruitlens",
    )
    source.add_argument(
        "-f",
        "--values",
        metavar="FILE",
        action="append",
        default=[],
        help="Values file for the chart, repeatable, later ones win. "
        "Example: -f helm/fruitlens/values-eks.yaml",
    )
    source.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="set_values",
        help="Chart value override, repeatable (helm --set syntax). "
        "Example: --set config.output=s3a://fruits/runs/2026-11-26",
    )
    source.add_argument(
        "--release",
        default=sparkapp.DEFAULT_RELEASE,
        help=f"Release name the chart is rendered with (names the application). "
        f"Default {sparkapp.DEFAULT_RELEASE}. Example: --release nightly",
    )
    source.add_argument(
        "--helm",
        metavar="PATH",
        help="helm binary [env FRUITLENS_HELM; default: PATH, then the make k8s-tools cache]. "
        "Example: --helm /usr/local/bin/helm",
    )
    target = parser.add_argument_group("cluster")
    target.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="Namespace of the application; default: the manifest's, else "
        f"{sparkapp.DEFAULT_NAMESPACE}. Example: -n fruitlens",
    )
    target.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig [env KUBECONFIG]. Example: --kubeconfig ~/.kube/config",
    )
    target.add_argument(
        "--context", help="kubeconfig context to use. Example: --context kind-fruitlens"
    )
    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument(
        "--dry-run",
        action="store_true",
        help="Print the SparkApplication and its settings ConfigMap as YAML and exit without "
        "contacting the cluster. Example: --dry-run",
    )
    behaviour.add_argument(
        "--replace",
        action="store_true",
        help="Delete an existing application of the same name first (a finished one blocks "
        "re-submission until its timeToLiveSeconds expires). Example: --replace",
    )
    behaviour.add_argument(
        "--timeout",
        type=float,
        default=6 * 3600.0,
        metavar="SECONDS",
        help="Give up waiting after this long (exit 124; the application keeps running). "
        "Example: --timeout 1800",
    )
    behaviour.add_argument(
        "--poll-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="Seconds between status reads. Example: --poll-interval 2",
    )
    behaviour.add_argument(
        "--no-logs",
        dest="logs",
        action="store_false",
        help="Do not stream the driver's log. Example: --no-logs",
    )
    behaviour.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="Return once the application is created. Example: --no-wait",
    )


def run_submit(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """The work of `fruitlens submit` on parsed arguments (the CLI may call this directly)."""
    out = out or sys.stdout
    try:
        app, settings = sparkapp.load_application(args)
        if args.dry_run:
            yaml.safe_dump_all([*settings, app], out, sort_keys=False)
            return sparkapp.EXIT_OK
        api, core = sparkapp.kube_clients(args.kubeconfig, args.context)
        sparkapp.check_prerequisites(core, app, {c["metadata"]["name"] for c in settings})
        sparkapp.create_application(api, core, app, settings, args.replace, out)
        if not args.wait:
            return sparkapp.EXIT_OK
        return sparkapp.wait_for_application(
            api,
            core if args.logs else None,
            app["metadata"]["namespace"],
            app["metadata"]["name"],
            args.timeout,
            args.poll_interval,
            out,
        )
    except sparkapp.SubmitError as exc:
        print(f"fruitlens submit: {exc}", file=sys.stderr)
        return sparkapp.EXIT_USAGE
    except OSError as exc:
        print(f"fruitlens submit: {exc}", file=sys.stderr)
        return sparkapp.EXIT_USAGE
    except urllib3.exceptions.HTTPError as exc:
        print(f"fruitlens submit: cannot reach the API server: {exc}", file=sys.stderr)
        return sparkapp.EXIT_FAILED
    except Exception as exc:
        from kubernetes.client.exceptions import ApiException

        if not isinstance(exc, ApiException):
            raise
        # The API server's own message says what is wrong (schema, RBAC, admission webhook).
        print(
            f"fruitlens submit: API server answered {exc.status} {exc.reason}: "
            f"{sparkapp.api_message(exc)}",
            file=sys.stderr,
        )
        return sparkapp.EXIT_FAILED
