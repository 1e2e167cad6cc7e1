-- sales_daily of dates read a slice of the orders at a time (sales_ops/curated/rollups.py): the
-- slices' sums, written to the scratch table by rollup_by_date_sales_daily.sql, added up into
-- version {version}. One row per key, as one statement over all the orders gives: every figure is
-- a count, a sum or a max.
SELECT
    kind,
    value,
    sum(live_orders) AS live_orders,
    sum(orders) AS orders,
    sum(units) AS units,
    sum(total_sales) AS total_sales,
    max(newest_event_time) AS newest_event_time,
    order_date,
    {version} AS v
FROM {database}.sales_daily__slices
WHERE v IN ({slices})
GROUP BY kind, value, order_date
