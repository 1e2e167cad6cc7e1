"""The production instance config (dagster/production/dagster.yaml) loads, and a real
materialization runs with its run and event storage on a real PostgreSQL server that this test
starts (Debian's `postgresql`, installed by .ci/run), its compute logs in (the emulator's) S3."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from glob import glob
from pathlib import Path

import pytest
import yaml

import dagster as dg
from sales_ops.defs.ingest.load import order_load
from sales_ops.defs.resources import resources_for
from sales_ops.settings import Settings
from tests.harness import ROOT, free_port

pytestmark = pytest.mark.slow

PRODUCTION = ROOT / "dagster" / "production" / "dagster.yaml"
SHARED = ("concurrency", "run_retries", "run_monitoring", "freshness")


def _pg_bin() -> Path | None:
    found = shutil.which("initdb") or next(iter(sorted(glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    return Path(found).parent if found else None


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    # PostgreSQL refuses to run as root (CI runs as root): run it as the `postgres` user then.
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


@pytest.fixture()
def postgres() -> Iterator[dict[str, str]]:
    """A PostgreSQL server of its own on a free loopback port, with password auth."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb): apt-get install postgresql (.ci/run does)")
    owner = "postgres" if os.geteuid() == 0 else None
    # Not under pytest's tmp dir (mode 700, root's): the server's user must reach its data dir.
    root = Path(tempfile.mkdtemp(prefix="sales-ops-pg-"))
    (root / "pw").write_text("s3cret-test\n")
    if owner:
        shutil.chown(root, owner)
        shutil.chown(root / "pw", owner)
    port = free_port()
    init = [str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "dagster", "-A", "scram-sha-256"]
    subprocess.run(_as_owner([*init, f"--pwfile={root / 'pw'}"], owner), check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
    start = [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-o", options, "-l", str(root / "log"), "-w"]
    subprocess.run(_as_owner([*start, "start"], owner), check=True, capture_output=True)
    try:
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_DB": "postgres",
            "DAGSTER_PG_USERNAME": "dagster",
            "DAGSTER_PG_PASSWORD": "s3cret-test",
        }
    finally:
        stop = [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_owner(stop, owner), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_production_config_shares_the_local_policies() -> None:
    production = yaml.safe_load(PRODUCTION.read_text())
    local = yaml.safe_load((ROOT / "dagster" / "dagster.yaml").read_text())
    assert {key: production[key] for key in SHARED} == {key: local[key] for key in SHARED}


def test_a_materialization_runs_on_postgres_with_the_production_config(
    postgres: dict[str, str], local_stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster_aws.ecs import EcsRunLauncher
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    env = {
        **postgres,
        "DAGSTER_RUN_TASK_DEFINITION": "sales-ops-dagster-run",
        "DAGSTER_COMPUTE_LOG_BUCKET": local_stack.bucket,
        "AWS_REGION": local_stack.region,
        "AWS_DEFAULT_REGION": local_stack.region,  # boto3 reads this one (Fargate sets both)
        "AWS_ENDPOINT_URL_S3": local_stack.endpoint_url or "",  # boto3's per-service endpoint variable
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # The launcher reads its task definition when it starts: the stack's, on the emulator's ECS.
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECS", local_stack.endpoint_url or "")
    local_stack.client("ecs").register_task_definition(
        family="sales-ops-dagster-run",
        requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="512", memory="1024",
        containerDefinitions=[{"name": "run", "image": "sales-ops-dagster:test", "essential": True}],
    )  # fmt: skip
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PRODUCTION, home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.run_launcher, EcsRunLauncher)
        config = {"ops": {"order_load": {"config": {"orders": 3, "rate": 0.0}}}}
        result = dg.materialize(
            [order_load], instance=instance, resources=resources_for(local_stack), run_config=config
        )
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey("order_load"))
        assert event is not None and event.run_id == result.run_id
        assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
    # The run is in PostgreSQL, not in a file under DAGSTER_HOME.
    assert not list(home.rglob("*.db"))
    psql = shutil.which("psql") or str((_pg_bin() or Path("/usr/bin")) / "psql")
    count = subprocess.run(
        [psql, "-h", "127.0.0.1", "-p", postgres["DAGSTER_PG_PORT"], "-U", "dagster", "-d", "postgres",
         "-tAc", f"select count(*) from runs where run_id = '{result.run_id}'"],
        env={**os.environ, "PGPASSWORD": postgres["DAGSTER_PG_PASSWORD"]},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert count.stdout.strip() == "1"
    logs = local_stack.client("s3").list_objects_v2(Bucket=local_stack.bucket, Prefix="dagster/compute-logs/")
    assert logs.get("KeyCount", 0) > 0, "the step's compute logs were not uploaded to S3"
