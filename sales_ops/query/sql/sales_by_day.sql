-- Sales per order date.
SELECT order_date, count(*) AS orders, sum(quantity) AS units, sum(order_total) AS total_sales
FROM {database}.orders_latest
WHERE {is_sale}
GROUP BY order_date
ORDER BY order_date
