-- Rollup: per product, units sold over the last hour, day, week and in all, and the stock left
-- (the catalogue's opening stock minus units sold; cancelled and returned orders give stock back).
WITH sold AS (
    SELECT
        product_id,
        max(product_name) AS product_name,
        max(category) AS category,
        sum(quantity) AS units_sold,
        sum(CASE WHEN {created_ts} >= current_timestamp - INTERVAL '1' HOUR
                 THEN quantity ELSE 0 END) AS units_sold_1h,
        sum(CASE WHEN {created_ts} >= current_timestamp - INTERVAL '1' DAY
                 THEN quantity ELSE 0 END) AS units_sold_24h,
        sum(CASE WHEN {created_ts} >= current_timestamp - INTERVAL '7' DAY
                 THEN quantity ELSE 0 END) AS units_sold_7d
    FROM {database}.orders_latest
    WHERE {is_sale}
    GROUP BY product_id
)
SELECT
    coalesce(p.product_id, s.product_id) AS product_id,
    coalesce(p.product_name, s.product_name) AS product_name,
    coalesce(p.category, s.category) AS category,
    coalesce(s.units_sold_1h, 0) AS units_sold_1h,
    coalesce(s.units_sold_24h, 0) AS units_sold_24h,
    coalesce(s.units_sold_7d, 0) AS units_sold_7d,
    coalesce(s.units_sold, 0) AS units_sold,
    CAST(p.opening_stock AS BIGINT) AS opening_stock,
    CAST(p.opening_stock AS BIGINT) - coalesce(s.units_sold, 0) AS stock_left,
    CAST(current_timestamp AS TIMESTAMP) AS as_of
FROM {database}.products AS p
FULL OUTER JOIN sold AS s ON p.product_id = s.product_id
