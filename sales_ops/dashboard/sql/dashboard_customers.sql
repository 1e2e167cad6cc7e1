-- Dashboard: customers of the last 30 days new (one live order in them) vs returning (two or
-- more), from the customer_activity rollup (a running total over those days, docs/design.md §2.7);
-- "active" means they ordered in the last hour.
SELECT
    CASE WHEN orders > 1 THEN 'returning' ELSE 'new' END AS segment,
    count(*) AS customers,
    count(CASE WHEN last_order_at >= CAST(current_timestamp - INTERVAL '1' HOUR AS TIMESTAMP) THEN 1 END)
        AS active_last_hour,
    sum(orders) AS orders,
    sum(spend) AS spend
FROM {database}.customer_activity
GROUP BY 1
ORDER BY 1
