-- Rollup partials: per customer and order_date, live orders, sales, spend, and first and last
-- order time. Partitioned by order_date and rebuilt only for the dates whose orders changed
-- ({dates}, into version {version}); customer_activity adds them up (rollup_total_customer_activity.sql).
SELECT
    customer_id,
    count(*) AS orders,
    count_if({is_sale}) AS sales,
    sum(CASE WHEN {is_sale} THEN order_total ELSE 0 END) AS spend,
    CAST(min({created_ts}) AS TIMESTAMP) AS first_order_at,
    CAST(max({created_ts}) AS TIMESTAMP) AS last_order_at,
    order_date,
    {version} AS v
FROM {database}.orders_latest
WHERE order_date IN ({dates})
GROUP BY customer_id, order_date
