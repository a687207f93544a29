/** Search page: top queries, result counts, zero-result searches, search → purchase conversion (latest export). */
import { loadConfig } from "../../pipeline/config.ts";
import { queryExports, runLoader } from "../../pipeline/site/loaders.ts";

await runLoader(
  "HDFS exports",
  () =>
    queryExports(loadConfig(), ["mart_search", "fact_event"], {
      totals:
        `select sum(searches)::double as searches, sum(zero_result_searches)::double as zero_result_searches,
                    sum(zero_result_searches)::double / nullif(sum(searches), 0) as zero_result_rate,
                    sum(converting_sessions)::double / nullif(sum(searching_sessions), 0) as conversion_rate,
                    count(distinct search_query)::double as distinct_queries
               from mart_search`,
      queries:
        `select search_query, sum(searches)::double as searches, sum(zero_result_searches)::double as zero_result_searches,
                     sum(zero_result_searches)::double / nullif(sum(searches), 0) as zero_result_rate,
                     (sum(avg_results * searches) / nullif(sum(searches), 0))::double as avg_results,
                     sum(searching_sessions)::double as searching_sessions, sum(converting_sessions)::double as converting_sessions,
                     sum(converting_sessions)::double / nullif(sum(searching_sessions), 0) as conversion_rate
                from mart_search group by 1 order by 2 desc, 1 limit 100`,
      zeroResults:
        `select search_query, sum(zero_result_searches)::double as zero_result_searches, sum(searches)::double as searches
                    from mart_search where zero_result_searches > 0 group by 1 order by 2 desc, 1 limit 50`,
      resultBins:
        `select (floor(results_count / 5) * 5)::double as x0, (floor(results_count / 5) * 5 + 5)::double as x1,
                        count(*)::double as count
                   from fact_event where event_type = 'search' and results_count is not null group by 1, 2 order by 1`,
      daily:
        `select date_day::varchar as day, sum(searches)::double as searches,
                   sum(converting_sessions)::double / nullif(sum(searching_sessions), 0) as conversion_rate
              from mart_search group by 1 order by 1`,
    }),
);
