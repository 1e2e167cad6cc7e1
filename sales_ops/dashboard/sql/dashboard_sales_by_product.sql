-- Dashboard: sales per product now (orders_live: the compacted state plus the raw tail, so a write
-- shows within seconds); its sum is the page's total. total_sales_by_product asks orders_latest.
-- A sale is a live order not cancelled or returned (sales_ops.schema); amounts are order_total.
SELECT
    product_name,
    count(*) AS orders,
    sum(quantity) AS units,
    sum(order_total) AS total_sales
FROM {database}.orders_live
WHERE {is_sale}
GROUP BY product_name
ORDER BY total_sales DESC, product_name
