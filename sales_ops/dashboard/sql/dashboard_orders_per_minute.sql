-- Dashboard: orders created per minute over the last 60 minutes (minutes_ago 0 = this minute).
-- Orders deleted since are gone from orders_live, and so from these counts.
SELECT
    date_diff('minute', date_trunc('minute', created), date_trunc('minute', current_timestamp)) AS minutes_ago,
    count(*) AS orders,
    coalesce(sum(CASE WHEN {is_sale} THEN order_total END), 0) AS sales
FROM (
    SELECT status, order_total, {created_ts} AS created
    FROM {database}.orders_live
    WHERE order_date >= current_date - INTERVAL '1' DAY  -- partition pruning; the hour may start yesterday
) AS recent
WHERE created >= date_trunc('minute', current_timestamp) - INTERVAL '59' MINUTE
GROUP BY 1
ORDER BY 1
