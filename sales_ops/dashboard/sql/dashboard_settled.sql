-- Dashboard: the figures of the dates not open (sales_ops/dashboard/snapshot.py), as one build of
-- the sales_totals rollup saw them: its running totals ({totals}: that build's version) minus that
-- build's daily partials of the open dates ({open_partials}: the sales_daily versions its ledger
-- names). dashboard_live.sql adds orders_live of the open dates to it.
SELECT kind, value, live_orders, orders, units, total_sales, newest_event_time
FROM {database}.sales_totals__versions
WHERE {totals}
UNION ALL
SELECT kind, value, -live_orders, -orders, -units, -total_sales, NULL
FROM {database}.sales_daily__versions
WHERE {open_partials}
