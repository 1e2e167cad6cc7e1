-- Segment figures of one pass of a customer_activity build (the files it wrote: {files}), as
-- partition {version} of customer_segments__versions: customers with one live order in the window
-- are new, with two or more returning. The dashboard adds up the passes of a build
-- (dashboard_customers.sql) instead of reading every customer.
SELECT
    CASE WHEN orders > 1 THEN 'returning' ELSE 'new' END AS segment,
    count(*) AS customers,
    sum(orders) AS orders,
    sum(spend) AS spend,
    {version} AS v
FROM {database}.customer_activity__build
WHERE "$path" IN ({files})
GROUP BY 1
