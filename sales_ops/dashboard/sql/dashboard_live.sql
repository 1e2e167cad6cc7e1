-- Dashboard: every figure of a refresh about orders now, in one statement: one read of the
-- compacted tables and of the raw tail, so no card of a refresh contradicts another (the total,
-- today, the last hour, the per-minute chart, the top products and the dimensions all count the
-- same orders). One row per group, told apart by `kind`:
--   'all'      one row: the headline figures (live orders, sales all time, today, last hour,
--              customers with a live order created in the last hour) and the newest change the
--              live state reflects;
--   'product', 'category', 'channel', 'region': sales per value (a group with no sale has 0 orders);
--   'minute'   the last 60 minutes by creation (value = minutes ago, 0 = this minute; orders counts
--              every live order created then, sales their sales): the headline's "last hour";
--   'sketch'   only where {sketched} (a statement of one slice of the orders, snapshot.py): per
--              register (value), the highest customer rank of the last hour's live orders, the
--              HyperLogLog sketch that counts their customers over slices (sketch.py).
-- A sale is a live order not cancelled or returned (sales_ops.schema); amounts are order_total.
-- Orders deleted since are gone from orders_live, and so from every figure.
-- `live` is orders_live, or orders_live restricted to the open dates (sales_ops/dashboard/
-- snapshot.py); `settled` then adds the other dates' figures from one build of the sales_totals
-- rollup (dashboard_settled.sql), and is empty when `live` is all of orders_live. Today and the
-- last hour always lie in the open dates.
WITH live AS (  -- the engine reads only the columns the groups below use
    SELECT
        *,
        {is_sale} AS is_sale,
        CASE
            WHEN {created_ts} >= date_trunc('minute', current_timestamp) - INTERVAL '59' MINUTE
            THEN date_diff('minute', date_trunc('minute', {created_ts}), date_trunc('minute', current_timestamp))
        END AS minutes_ago,
        CASE
            WHEN {sketched} AND {created_ts} >= date_trunc('minute', current_timestamp) - INTERVAL '59' MINUTE
            THEN {customer_register}
        END AS customer_register,
        {customer_rank} AS customer_rank
    FROM {live}
),
read_now AS (
    SELECT
        CASE
            WHEN grouping(product_name) = 0 THEN 'product'
            WHEN grouping(category) = 0 THEN 'category'
            WHEN grouping(channel) = 0 THEN 'channel'
            WHEN grouping(region) = 0 THEN 'region'
            WHEN grouping(minutes_ago) = 0 THEN 'minute'
            WHEN grouping(customer_register) = 0 THEN 'sketch'
            ELSE 'all'
        END AS kind,
        coalesce(
            product_name, category, channel, region, CAST(minutes_ago AS varchar), CAST(customer_register AS varchar)
        ) AS value,
        count(*) AS live_orders,
        count(CASE WHEN is_sale THEN 1 END) AS orders,
        coalesce(sum(CASE WHEN is_sale THEN quantity END), 0) AS units,
        coalesce(sum(CASE WHEN is_sale THEN order_total END), 0) AS total_sales,
        coalesce(sum(CASE WHEN is_sale AND order_date = current_date THEN order_total END), 0) AS sales_today,
        count(CASE WHEN is_sale AND order_date = current_date THEN 1 END) AS orders_today,
        coalesce(sum(CASE WHEN is_sale AND minutes_ago IS NOT NULL THEN order_total END), 0) AS sales_last_hour,
        count(CASE WHEN is_sale AND minutes_ago IS NOT NULL THEN 1 END) AS orders_last_hour,
        count(DISTINCT CASE WHEN minutes_ago IS NOT NULL THEN customer_id END) AS customers_last_hour,
        max(last_event_time) AS newest_event_time,
        max(customer_rank) AS customer_rank
    FROM live
    GROUP BY GROUPING SETS ((product_name), (category), (channel), (region), (minutes_ago), (customer_register), ())
),
settled AS (
    {settled}
)
SELECT
    kind,
    value,
    sum(live_orders) AS live_orders,
    sum(orders) AS orders,
    sum(units) AS units,
    sum(total_sales) AS total_sales,
    sum(sales_today) AS sales_today,
    sum(orders_today) AS orders_today,
    sum(sales_last_hour) AS sales_last_hour,
    sum(orders_last_hour) AS orders_last_hour,
    sum(customers_last_hour) AS customers_last_hour,
    max(newest_event_time) AS newest_event_time,
    max(customer_rank) AS customer_rank
FROM (
    SELECT * FROM read_now
    UNION ALL
    SELECT kind, value, live_orders, orders, units, total_sales, 0, 0, 0, 0, 0, newest_event_time, 0
    FROM settled
) AS every_source
GROUP BY kind, value
-- (the 'minute' group of the orders created before the last hour is no minute, nor is their
-- 'sketch' group a register: left out)
HAVING (kind = 'all' OR sum(live_orders) <> 0) AND NOT (kind IN ('minute', 'sketch') AND value IS NULL)
