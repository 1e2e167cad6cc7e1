-- Dashboard: headline numbers (live orders, sales today and in the last hour, UTC, by created_at).
-- A sale is a live order not cancelled or returned (sales_ops.schema); amounts are order_total.
SELECT
    count(*) AS live_orders,
    coalesce(sum(CASE WHEN is_sale AND order_date = current_date THEN order_total END), 0) AS sales_today,
    count(CASE WHEN is_sale AND order_date = current_date THEN 1 END) AS orders_today,
    coalesce(sum(CASE WHEN is_sale AND created >= last_hour THEN order_total END), 0) AS sales_last_hour,
    count(CASE WHEN is_sale AND created >= last_hour THEN 1 END) AS orders_last_hour
FROM (
    SELECT
        order_date,
        order_total,
        {is_sale} AS is_sale,
        {created_ts} AS created,
        current_timestamp - INTERVAL '1' HOUR AS last_hour
    FROM {database}.orders_live
) AS live
