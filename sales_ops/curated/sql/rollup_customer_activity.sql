-- Rollup: per customer, live orders, sales, spend, and first and last order time.
SELECT
    customer_id,
    count(*) AS orders,
    count_if({is_sale}) AS sales,
    sum(CASE WHEN {is_sale} THEN order_total ELSE 0 END) AS spend,
    CAST(min({created_ts}) AS TIMESTAMP) AS first_order_at,
    CAST(max({created_ts}) AS TIMESTAMP) AS last_order_at
FROM {database}.orders_latest
GROUP BY customer_id
