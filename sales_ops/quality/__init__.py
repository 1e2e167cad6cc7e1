"""Data-quality checks, one place for the CLI (`sales-ops check`) and the Dagster asset checks."""

from sales_ops.quality.checks import (
    check_amounts,
    check_freshness,
    check_no_processing_failed,
    check_no_quarantined,
    check_raw_schema,
    check_rejected,
    check_unique_order_id,
    run_checks,
)
from sales_ops.quality.outcome import CheckOutcome
from sales_ops.quality.reconciliation import check_reconciliation, scan_orders

__all__ = [
    "CheckOutcome",
    "check_amounts",
    "check_freshness",
    "check_no_processing_failed",
    "check_no_quarantined",
    "check_raw_schema",
    "check_reconciliation",
    "check_rejected",
    "check_unique_order_id",
    "run_checks",
    "scan_orders",
]
