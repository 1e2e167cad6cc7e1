-- Dashboard: customers of the last 30 days new (one live order in them) vs returning (two or
-- more), from one build of the customer_activity rollup ({version}: the build its state names; a
-- sum over those days rebuilt hourly, docs/design.md §2.7): the segment figures each of its passes
-- wrote, added up (a few rows, whatever the number of customers). Who ordered in the last hour
-- comes from dashboard_live.sql (customers_last_hour), not from here: this result is kept until
-- the next build (sales_ops/dashboard/metrics.py, RollupReads).
SELECT
    segment,
    sum(customers) AS customers,
    sum(orders) AS orders,
    sum(spend) AS spend
FROM {database}.customer_segments__versions
WHERE v = {version}
GROUP BY 1
ORDER BY 1
