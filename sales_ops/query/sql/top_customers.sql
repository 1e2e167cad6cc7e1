-- The ten customers who spent most (sales only).
SELECT customer_id, count(*) AS orders, sum(order_total) AS spend
FROM {database}.orders_latest
WHERE {is_sale}
GROUP BY customer_id
ORDER BY spend DESC, customer_id
LIMIT 10
