"""MinIO, the S3 store under the lake and MLflow's artifacts, built from source with `go install`."""

from __future__ import annotations

import json
import shutil
import urllib.request

from plantlake.core.errors import InstallError
from plantlake.services.base import Service
from plantlake.services.process import Launch, Report, run_logged
from plantlake.services.versions import versions

MODULE = "github.com/minio/minio"


class MinioService(Service):
    name = "minio"
    port_setting = "PLANTLAKE_S3__ENDPOINT"
    start_timeout = 60.0

    @property
    def managed(self) -> bool:
        return self.settings.s3.managed

    def endpoint(self) -> str:
        return self.settings.s3.endpoint

    def ports(self) -> list[tuple[str, int]]:
        host, port = self.settings.s3.host_port
        return [(host, port), (host, self.settings.s3.console_port)]

    @property
    def binary(self):
        return self.settings.cache / "bin" / f"minio-{versions().minio}" / "minio"

    def install(self, report: Report) -> None:
        if self.binary.exists():
            return
        if shutil.which("go") is None:
            raise InstallError(
                "Go is needed to build MinIO (`go install`), and `go` is not on PATH.",
                hint="Install Go 1.24 or newer, or run your own S3 and set "
                "PLANTLAKE_S3__MANAGED=false with PLANTLAKE_S3__ENDPOINT.",
            )
        report(f"building MinIO {versions().minio} with go install (first time: several minutes)")
        run_logged(
            ["go", "install", f"{MODULE}@{versions().minio}"],
            env={"GOBIN": str(self.binary.parent), "CGO_ENABLED": "0"},
            log=self.settings.logs / "install-minio.log",
            what="Building MinIO",
            hint="Check that the Go module proxy is reachable, then run `plantlake up` again.",
            report=report,
        )

    def launch(self) -> Launch:
        s3 = self.settings.s3
        host, port = s3.host_port
        return self._launch(
            [
                str(self.binary),
                "server",
                str(self.data_dir / "storage"),
                "--address",
                f"{host}:{port}",
                "--console-address",
                f"{host}:{s3.console_port}",
            ],  # fmt: skip
            env={
                "MINIO_ROOT_USER": s3.access_key,
                "MINIO_ROOT_PASSWORD": s3.secret_key.get_secret_value(),
                "MINIO_UPDATE": "off",
            },
        )

    def prepare(self, report: Report) -> None:
        (self.data_dir / "storage").mkdir(parents=True, exist_ok=True)

    def probe(self) -> str:
        url = f"{self.settings.s3.endpoint}/minio/health/live"
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status != 200:
                raise RuntimeError(f"health check answered {response.status}")
        return "live"

    def configure(self, report: Report) -> None:
        client = s3_client(self.settings)
        for bucket in sorted(self.settings.lake.buckets() | {self.settings.mlflow.artifact_bucket}):
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
                report(f"created bucket {bucket}")
        if self.managed and self.settings.mlflow.s3_access_key:
            self._mlflow_user(report)

    def _mlflow_user(self, report: Report) -> None:
        """MLflow's own user, allowed its artifact bucket only (idempotent: a changed secret in
        the settings becomes the user's new secret)."""
        from minio.error import MinioAdminException

        admin = admin_client(self.settings)
        m = self.settings.mlflow
        policy = f"plantlake-{m.artifact_bucket}-artifacts"
        admin.policy_add(policy, policy=bucket_policy(m.artifact_bucket))
        try:
            attached = json.loads(admin.user_info(m.s3_access_key)).get("policyName") or ""
        except MinioAdminException:
            attached = None  # no such user yet
        admin.user_add(m.s3_access_key, m.s3_secret_key.get_secret_value())
        if policy not in (attached or "").split(","):
            admin.attach_policy([policy], user=m.s3_access_key)
        if attached is None:
            report(
                f"created user {m.s3_access_key} for MLflow, limited to bucket {m.artifact_bucket}"
            )


def bucket_policy(bucket: str) -> dict:
    """An IAM policy that allows everything on one bucket and its objects, and nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:*"],
                       "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}],
    }  # fmt: skip


def admin_client(settings):
    """MinIO's admin API with the root keys (users and policies of the managed MinIO)."""
    from minio.credentials import StaticProvider
    from minio.minioadmin import MinioAdmin

    host, port = settings.s3.host_port
    keys = StaticProvider(settings.s3.access_key, settings.s3.secret_key.get_secret_value())
    return MinioAdmin(endpoint=f"{host}:{port}", credentials=keys, region=settings.s3.region,
                      secure=settings.s3.secure)  # fmt: skip


def s3_client(settings):
    """A MinIO SDK client for the configured S3 endpoint."""
    from minio import Minio

    host, port = settings.s3.host_port
    return Minio(
        f"{host}:{port}",
        access_key=settings.s3.access_key,
        secret_key=settings.s3.secret_key.get_secret_value(),
        secure=settings.s3.secure,
        region=settings.s3.region,
    )


def delta_rs_options(settings) -> dict[str, str]:
    """storage_options for delta-rs (the `deltalake` package) and DuckDB on the lake's MinIO.

    Rename-based commits are safe here only because each table has one writer (the lake
    contract); delta-rs refuses S3 writes without a locking provider otherwise.
    """
    return {
        "AWS_ENDPOINT_URL": settings.s3.endpoint,
        "AWS_ACCESS_KEY_ID": settings.s3.access_key,
        "AWS_SECRET_ACCESS_KEY": settings.s3.secret_key.get_secret_value(),
        "AWS_REGION": settings.s3.region,
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }
