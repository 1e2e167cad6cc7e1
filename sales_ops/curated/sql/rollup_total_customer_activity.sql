-- Rollup: per customer, live orders, sales, spend, and first and last order time, as running
-- totals (docs/design.md §2.7): the previous build ({with_previous}), plus the daily partials of
-- the dates rebuilt since ({new_partials}), minus what those dates held at the previous build
-- ({old_partials}). First and last order time are running min and max: they never move back.
-- A full build ({with_previous} FALSE, every partial new) adds up every date.
WITH change AS (
    SELECT customer_id, orders, sales, spend, first_order_at, last_order_at
    FROM {database}.customer_activity_daily__versions
    WHERE {new_partials}
    UNION ALL
    SELECT customer_id, -orders, -sales, -spend, NULL, NULL
    FROM {database}.customer_activity_daily__versions
    WHERE {old_partials}
    UNION ALL
    SELECT customer_id, orders, sales, spend, first_order_at, last_order_at
    FROM {database}.customer_activity
    WHERE {with_previous}
)
SELECT
    customer_id,
    sum(orders) AS orders,
    sum(sales) AS sales,
    sum(spend) AS spend,
    min(first_order_at) AS first_order_at,
    max(last_order_at) AS last_order_at
FROM change
GROUP BY customer_id
HAVING sum(orders) > 0
