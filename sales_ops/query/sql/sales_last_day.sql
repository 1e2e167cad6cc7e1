-- Sales (orders, amount) of orders created in the last 24 hours.
SELECT
    count(*) AS orders,
    coalesce(sum(order_total), 0) AS total_sales
FROM {database}.orders_live
WHERE {is_sale}
  -- the partition filter lets the engine skip older dates; the timestamp filter is the rule
  AND order_date >= current_date - INTERVAL '1' DAY
  AND {created_ts} >= current_timestamp - INTERVAL '1' DAY
