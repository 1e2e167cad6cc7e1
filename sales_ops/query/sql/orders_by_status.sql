-- Live orders and their amount per status.
SELECT status, count(*) AS orders, sum(order_total) AS amount
FROM {database}.orders_live
GROUP BY status
ORDER BY orders DESC, status
