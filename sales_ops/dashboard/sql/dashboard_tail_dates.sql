-- Dashboard: the order dates the raw tail's changes touch ({raw_tail}: the tail of orders_live,
-- docs/design.md §12): orders_live differs from the compacted tables on those dates only, so a
-- refresh reads them live (sales_ops/dashboard/snapshot.py). A delete that carries no date (a
-- Keys-only REMOVE) is listed by its order_id (`dateless`), for dashboard_dateless_dates.sql.
SELECT DISTINCT
    {checked_order_date} AS order_date,
    CASE WHEN {checked_order_date} IS NULL THEN CAST(order_id AS VARCHAR) END AS dateless
FROM {database}.raw_orders
WHERE ({raw_tail}) AND {reject_reason} IS NULL
