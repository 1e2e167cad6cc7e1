-- Dashboard: customers of the last 30 days new (one live order in them) vs returning (two or
-- more), from one build of the customer_activity rollup ({version}: the build its state names; a
-- running total over those days rebuilt hourly, docs/design.md §2.7). Who ordered in the last hour
-- comes from dashboard_live.sql (customers_last_hour), not from here: this result is kept until
-- the next build (sales_ops/dashboard/metrics.py, RollupReads).
SELECT
    CASE WHEN orders > 1 THEN 'returning' ELSE 'new' END AS segment,
    count(*) AS customers,
    sum(orders) AS orders,
    sum(spend) AS spend
FROM {database}.customer_activity__versions
WHERE v = {version}
GROUP BY 1
ORDER BY 1
