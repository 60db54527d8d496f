"""A real Kubernetes API server on 127.0.0.1 for the deployment tests: etcd + kube-apiserver
built by `make k8s-tools`, no kubelet, no controllers. It validates and stores objects exactly as
a cluster's API server does (schemas, CRDs, strict field validation, admission), which is what a
server-side dry run and `fruitlens submit` need; nothing is ever scheduled.
"""

from __future__ import annotations

import contextlib
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

from support.net import free_port


class ApiServer:
    """Start with `with ApiServer(workdir, etcd, apiserver) as server:`; server.kubeconfig."""

    def __init__(
        self, workdir: Path, etcd: str, apiserver: str, startup_timeout: float = 120
    ) -> None:
        self.workdir = workdir
        self.etcd_bin = etcd
        self.apiserver_bin = apiserver
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.kubeconfig = workdir / "kubeconfig"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def __enter__(self) -> ApiServer:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        self.logs.append(log)
        with log.open("wb") as handle:
            proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        client_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd = self._spawn(
            "etcd",
            [
                self.etcd_bin,
                "--name=test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=test={peer_url}",
                "--unsafe-no-fsync",  # test data: durability costs seconds per test here
                "--log-level=warn",
            ],
        )
        self._wait(lambda: _http_ok(f"{etcd_url}/health"), etcd, "etcd")

        sa_key = self.workdir / "sa.key"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True
        )
        tokens = self.workdir / "tokens.csv"
        # system:masters: the tests play cluster admin and operator, not a restricted user.
        tokens.write_text(f'{self.token},admin,admin-uid,"system:masters"\n', encoding="utf-8")
        cert_dir = self.workdir / "certs"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                self.apiserver_bin,
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={cert_dir}",
                f"--token-auth-file={tokens}",
                "--anonymous-auth=false",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=false",
                "--profiling=false",
                "--enable-priority-and-fairness=false",
            ],
        )
        ca = cert_dir / "apiserver.crt"
        self._wait(lambda: ca.is_file() and self._ready(ca), apiserver, "kube-apiserver")
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {
                                "server": self.url,
                                # The self-signed serving cert and its CA, written by the server.
                                "certificate-authority": str(ca),
                            },
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": self.token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
                    "current-context": "test",
                }
            ),
            encoding="utf-8",
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _ready(self, ca: Path) -> bool:
        context = ssl.create_default_context(cafile=str(ca))
        request = urllib.request.Request(
            f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    def _wait(self, check, proc: subprocess.Popen[bytes], name: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")
            if check():
                return
            time.sleep(0.5)
        raise RuntimeError(f"{name} not ready after {self.startup_timeout}s:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        log = self.workdir / f"{name}.log"
        if not log.is_file():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self.procs.clear()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running(workdir: Path, etcd: str, apiserver: str) -> Iterator[ApiServer]:
    with ApiServer(workdir, etcd, apiserver) as server:
        yield server
