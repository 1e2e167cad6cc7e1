-- Rollup: per product, units sold over the last hour, day, week and in all, and the stock left
-- (the catalogue's opening stock minus units sold; cancelled and returned orders give stock back).
-- Units in all are a running total (docs/design.md §2.7): the previous build ({with_previous}),
-- plus the hourly rollup's partitions rebuilt since ({new_partials}), minus what they held at the
-- previous build ({old_partials}). The windows count whole hours of creation from the hourly rollup
-- (its last 8 dates only): the hour that holds now minus 1 hour, 1 day or 7 days, and those after.
WITH change AS (
    SELECT product_id, product_name, category, units
    FROM {database}.sales_by_product_hourly__versions
    WHERE {new_partials}
    UNION ALL
    SELECT product_id, product_name, category, -units
    FROM {database}.sales_by_product_hourly__versions
    WHERE {old_partials}
    UNION ALL
    SELECT product_id, product_name, category, units_sold
    FROM {database}.inventory_status
    WHERE {with_previous}
),
sold AS (
    SELECT product_id, max(product_name) AS product_name, max(category) AS category,
           sum(units) AS units_sold
    FROM change
    GROUP BY product_id
),
recent AS (
    SELECT
        product_id,
        sum(CASE WHEN order_hour >= date_trunc('hour', current_timestamp - INTERVAL '1' HOUR)
                 THEN units ELSE 0 END) AS units_sold_1h,
        sum(CASE WHEN order_hour >= date_trunc('hour', current_timestamp - INTERVAL '1' DAY)
                 THEN units ELSE 0 END) AS units_sold_24h,
        sum(CASE WHEN order_hour >= date_trunc('hour', current_timestamp - INTERVAL '7' DAY)
                 THEN units ELSE 0 END) AS units_sold_7d
    FROM {database}.sales_by_product_hourly
    WHERE order_date >= current_date - INTERVAL '8' DAY
    GROUP BY product_id
)
SELECT
    coalesce(p.product_id, s.product_id) AS product_id,
    coalesce(p.product_name, s.product_name) AS product_name,
    coalesce(p.category, s.category) AS category,
    coalesce(r.units_sold_1h, 0) AS units_sold_1h,
    coalesce(r.units_sold_24h, 0) AS units_sold_24h,
    coalesce(r.units_sold_7d, 0) AS units_sold_7d,
    coalesce(s.units_sold, 0) AS units_sold,
    CAST(p.opening_stock AS BIGINT) AS opening_stock,
    CAST(p.opening_stock AS BIGINT) - coalesce(s.units_sold, 0) AS stock_left,
    CAST(current_timestamp AS TIMESTAMP) AS as_of
FROM {database}.products AS p
FULL OUTER JOIN sold AS s ON p.product_id = s.product_id
LEFT JOIN recent AS r ON r.product_id = coalesce(p.product_id, s.product_id)
