-- Rollup: dashboard_live.sql's all-time figures (live orders, sales, units, amount sold per
-- product name, category, channel and region, and in all) as running totals (docs/design.md §2.7,
-- §8): the previous build ({with_previous}), plus the daily partials of the dates rebuilt since
-- ({new_partials}), minus what those dates held at the previous build ({old_partials}). The newest
-- event time is a running max. A full build ({with_previous} FALSE, every partial new) adds up
-- every date.
WITH change AS (
    SELECT kind, value, live_orders, orders, units, total_sales, newest_event_time
    FROM {database}.sales_daily__versions
    WHERE {new_partials}
    UNION ALL
    SELECT kind, value, -live_orders, -orders, -units, -total_sales, NULL
    FROM {database}.sales_daily__versions
    WHERE {old_partials}
    UNION ALL
    SELECT kind, value, live_orders, orders, units, total_sales, newest_event_time
    FROM {database}.sales_totals
    WHERE {with_previous}
)
SELECT
    kind,
    value,
    sum(live_orders) AS live_orders,
    sum(orders) AS orders,
    sum(units) AS units,
    sum(total_sales) AS total_sales,
    max(newest_event_time) AS newest_event_time
FROM change
GROUP BY kind, value
HAVING sum(live_orders) <> 0
