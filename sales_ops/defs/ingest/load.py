"""`order_load`: mock shop orders written to DynamoDB, the start of the streaming pipeline."""

from dataclasses import asdict

import dagster as dg
from sales_ops.defs.resources import DynamoDBResource, PipelineResource
from sales_ops.load.shop import run_load


class LoadConfig(dg.Config):
    orders: int = 300
    rate: float = 200.0  # changes per second; 0 = as fast as possible
    seed: int | None = None
    wait_delivered: bool = False  # return only once every change is in S3 (local target)
    timeout_s: float = 300.0


@dg.asset(
    group_name="load",
    kinds={"python", "dynamodb"},
    description="Mock order lifecycles (inserts, status updates, deletes) written to DynamoDB.",
)
def order_load(
    context: dg.AssetExecutionContext,
    config: LoadConfig,
    pipeline: PipelineResource,
    dynamodb: DynamoDBResource,
) -> dg.MaterializeResult:
    summary = run_load(pipeline.settings(), config.orders, rate=config.rate, seed=config.seed)
    context.log.info(f"wrote {summary.changes} changes for {summary.orders} orders in {summary.seconds:.1f}s")
    metadata: dict = {
        **asdict(summary),
        "changes": summary.changes,
        "changes_per_s": round(summary.rate, 1),
        "config": dg.MetadataValue.json(config.model_dump()),
    }
    if config.wait_delivered:
        waited = dynamodb.monitor().wait_delivered(config.timeout_s)
        if waited is not None:
            metadata["delivered_after_s"] = round(waited, 2)
    return dg.MaterializeResult(metadata=metadata)


load_job = dg.define_asset_job(
    "load_job", selection=[order_load], description="Write a batch of mock orders to DynamoDB."
)

LOAD_RUN_CONFIG = {"ops": {"order_load": {"config": {"orders": 200, "rate": 50.0}}}}

# Off by default: turn it on in the UI for a shop that keeps selling.
load_schedule = dg.ScheduleDefinition(
    name="mock_load_every_10_minutes",
    job=load_job,
    cron_schedule="*/10 * * * *",
    run_config=LOAD_RUN_CONFIG,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="A batch of 200 mock orders every 10 minutes (off by default).",
)
