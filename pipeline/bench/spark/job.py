"""The Spark peer of logpipe's stream consumer, for `deno task bench --peer spark`.

A PySpark Structured Streaming job doing the consumer's work on the same
topic: read every record from Kafka, validate it with the rules of
pipeline/events/schema.ts (as far as Spark SQL expresses them: the
differences are listed in pipeline/bench/spark.ts, SPARK_RULE_DIFFERENCES,
and printed by the bench), flatten each valid event into the
40 columns of pipeline/events/flatten.ts with the same types, and write zstd
Parquet to HDFS under event_date=YYYY-MM-DD/event_hour=HH, with
trigger(availableNow=True): everything in the topic at start, then exit.

Only Spark SQL expressions, no Python UDF: no Python worker runs and the work
stays in the JVM's generated code, which is how one writes a fast Spark job.
The sets and limits (event types, cities, catalog sizes, text lengths...) and
the list of reject reasons come from schema.ts through the --rules JSON the
bench writes, so they have one definition; a rule whose reason the validator
does not have (e.g. unknown_key before it existed) is not applied.

Exactly once: Spark's file sink. The offsets of a micro-batch are logged in
the checkpoint before it runs, and its files count only once the batch is in
the output's _spark_metadata log; Spark readers (and the bench) read that
log, so files of a failed attempt are never seen and a replay is harmless.

Usage: spark-submit --master local[2] --jars ... job.py --bootstrap HOST:PORT
  --topic T --output URI --checkpoint URI --rules FILE
Prints one JSON line on stdout at the end: rows read, micro-batches, their
durations.
"""

import argparse
import json
import sys
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

TS_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"
TS_FMT = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
UUID7_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
# The start of a JSON escape: a backslash after an even run of backslashes.
ESC = r"(?<!\\)(?:\\\\)*\\"
# C0 controls other than tab, newline and CR can only appear escaped.
CONTROL_RE = ESC + r"(?:u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F])|[bf])"
HIGH = r"u[dD][89abAB][0-9a-fA-F]{2}"
LOW = r"u[dD][c-fC-F][0-9a-fA-F]{2}"
SURROGATE_RE = (
    f"{ESC}{HIGH}(?!\\\\{LOW})|(?<!\\\\{HIGH}){ESC}{LOW}"
)

JSON_OPTIONS = {
    # Strict JSON, as JSON.parse: no 'single quotes', no NaN/Infinity.
    "allowSingleQuotes": "false",
    "allowNonNumericNumbers": "false",
    "mode": "PERMISSIVE",
    # Set when anything fails to parse or has the wrong type: a reject.
    "columnNameOfCorruptRecord": "_corrupt",
}

# Objects whose keys are checked (unknown_key) stay JSON text at first.
ENVELOPE = (
    "schema_version INT, event_type STRING, event_id STRING, event_ts STRING,"
    " level STRING, service STRING, user_id STRING, session_id STRING,"
    " device_type STRING, geo STRING, response_time_ms INT, details STRING"
)
GEO = "country STRING, city STRING"
FILTERS = "category STRING, price_range STRING, brand STRING"
# Order lines stay JSON text (items_json keeps them as they came) and are
# parsed one by one.
ITEM = "product_id STRING, quantity INT, unit_price DOUBLE"
DETAILS = {
    "product_view": "product_id STRING, category STRING, unit_price DOUBLE",
    "add_to_cart": "product_id STRING, quantity INT, unit_price DOUBLE",
    "search": "query STRING, results_count INT, filters STRING,"
    " searched_at STRING",
    "purchase": "order_id STRING, amount DOUBLE, payment_method STRING,"
    " items ARRAY<STRING>, shipping_address STRING",
    "order_complete": "order_id STRING, amount DOUBLE, payment_method STRING,"
    " items ARRAY<STRING>, shipping_method STRING,"
    " delivery_estimate STRING, completed_at STRING",
    "order_failed": "order_id STRING, attempted_amount DOUBLE,"
    " payment_method STRING, items ARRAY<STRING>, failure_reason STRING,"
    " failed_at STRING",
    "error": "error_code STRING, message STRING, error_at STRING,"
    " http_status INT, product_id STRING, order_id STRING",
}
ORDERS = ["purchase", "order_complete", "order_failed"]


def keys_of(schema):
    return [f.split(" ")[0] for f in schema.split(", ")]


def sql_str(v):
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_list(values):
    return ", ".join(sql_str(v) for v in values)


def parse(col, schema):
    """from_json with the strict options and a _corrupt column."""
    opts = ", ".join(f"{sql_str(k)}, {sql_str(v)}" for k, v in JSON_OPTIONS.items())
    return f"from_json({col}, {sql_str(schema + ', _corrupt STRING')}, map({opts}))"


class Rules:
    """The checks of schema.ts as Spark SQL, from the bench's rules JSON."""

    def __init__(self, d):
        self.d = d
        self.lim = d["limits"]
        self.reasons = set(d["rejectReasons"])
        skew = d.get("maxFutureSkewMs")
        self.skew = skew if "future_timestamp" in self.reasons else None

    def in_set(self, col, name):
        return f"{col} IN ({sql_list(self.d[name])})"

    def only_keys(self, text_col, schema):
        if "unknown_key" not in self.reasons:
            return "true"
        return (
            f"forall(json_object_keys({text_col}),"
            f" k -> k IN ({sql_list(keys_of(schema))}))"
        )

    def ts_ok(self, c):
        """Strict YYYY-MM-DDTHH:MM:SS.mmmZ, a real calendar instant, in range,
        and (future_timestamp) at most the skew ahead of the Kafka timestamp."""
        ahead = ""
        if self.skew is not None:
            ahead = (
                f" AND (unix_millis(timestamp) <= 0 OR unix_millis({ts(c)})"
                f" <= unix_millis(timestamp) + {int(self.skew)})"
            )
        return (
            f"({c} RLIKE {sql_str(TS_RE)} AND {ts(c)} IS NOT NULL"
            f" AND {c} >= '{self.lim['minTimestamp']}'"
            f" AND {c} < '{self.lim['maxTimestamp']}'{ahead})"
        )

    def date_ok(self, c):
        lo, hi = self.lim["minTimestamp"][:10], self.lim["maxTimestamp"][:10]
        return (
            f"({c} RLIKE {sql_str(DATE_RE)} AND to_date({c}, 'yyyy-MM-dd') IS NOT NULL"
            f" AND {c} >= '{lo}' AND {c} < '{hi}')"
        )

    def money_ok(self, c):
        """At most 2 decimals, exactly (the double nearest cents/100), in range."""
        return (
            f"({c} IS NOT NULL AND {cents(c)} BETWEEN 1 AND {self.lim['maxMoneyCents']}"
            f" AND CAST({cents(c)} AS DOUBLE) / 100 = {c})"
        )

    def product_ok(self, c):
        return (
            f"({c} RLIKE '^prod_[0-9]{{5}}$'"
            f" AND CAST(substr({c}, 6) AS INT) BETWEEN 1 AND {self.d['productCount']})"
        )

    def user_ok(self, c):
        return (
            f"({c} RLIKE '^user_[1-9][0-9]{{0,8}}$'"
            f" AND CAST(substr({c}, 6) AS INT) BETWEEN 1 AND {self.d['userCount']})"
        )

    def items_ok(self, t, amount):
        """Lines 1..maxItems, each valid, amount = Σ unit_price × quantity in cents."""
        d, lines = f"d_{t}", f"l_{t}"
        line = (
            f"(x.v IS NOT NULL AND x.v._corrupt IS NULL"
            f" AND {self.only_keys('x.text', ITEM)}"
            f" AND {self.product_ok('x.v.product_id')}"
            f" AND {int_ok('x.v.quantity', 1, self.lim['maxQuantity'])}"
            f" AND {self.money_ok('x.v.unit_price')})"
        )
        return (
            f"({d}.items IS NOT NULL AND size({d}.items) BETWEEN 1 AND {self.lim['maxItems']}"
            f" AND forall({lines}, x -> {line})"
            f" AND {self.money_ok(f'{d}.{amount}')}"
            f" AND {cents(f'{d}.{amount}')} = aggregate({lines}, 0L,"
            f" (acc, x) -> acc + {cents('x.v.unit_price')} * x.v.quantity))"
        )

    def details_ok(self, t):
        d = f"d_{t}"
        lim = self.lim
        order = (
            f"{hex_id_ok(f'{d}.order_id', 'order_')}"
            f" AND {self.in_set(f'{d}.payment_method', 'paymentMethods')}"
        )
        checks = {
            "product_view": f"{self.product_ok(f'{d}.product_id')}"
            f" AND {self.in_set(f'{d}.category', 'categories')}"
            f" AND {self.money_ok(f'{d}.unit_price')}",
            "add_to_cart": f"{self.product_ok(f'{d}.product_id')}"
            f" AND {int_ok(f'{d}.quantity', 1, lim['maxQuantity'])}"
            f" AND {self.money_ok(f'{d}.unit_price')}",
            "search": f"{text_ok(f'{d}.query', lim['maxTextLength'])}"
            f" AND {int_ok(f'{d}.results_count', 0, lim['maxResultsCount'])}"
            " AND f IS NOT NULL AND f._corrupt IS NULL"
            f" AND {self.only_keys(f'{d}.filters', FILTERS)}"
            f" AND (f.category IS NULL OR {self.in_set('f.category', 'categories')})"
            " AND (f.price_range IS NULL OR (f.price_range RLIKE '^[0-9]{1,7}-[0-9]{1,7}$'"
            " AND CAST(split(f.price_range, '-')[0] AS INT)"
            " < CAST(split(f.price_range, '-')[1] AS INT)))"
            f" AND (f.brand IS NULL OR {text_ok('f.brand', lim['maxNameLength'])})"
            f" AND {self.ts_ok(f'{d}.searched_at')}",
            "purchase": f"{order}"
            f" AND {text_ok(f'{d}.shipping_address', lim['maxTextLength'])}"
            f" AND {self.items_ok(t, 'amount')}",
            "order_complete": f"{order}"
            f" AND {self.in_set(f'{d}.shipping_method', 'shippingMethods')}"
            f" AND {self.date_ok(f'{d}.delivery_estimate')}"
            f" AND {self.ts_ok(f'{d}.completed_at')}"
            f" AND {self.items_ok(t, 'amount')}",
            "order_failed": f"{order}"
            f" AND {self.in_set(f'{d}.failure_reason', 'failureReasons')}"
            f" AND {self.ts_ok(f'{d}.failed_at')}"
            f" AND {self.items_ok(t, 'attempted_amount')}",
            "error": f"{self.in_set(f'{d}.error_code', 'errorCodes')}"
            f" AND {text_ok(f'{d}.message', lim['maxTextLength'])}"
            f" AND {self.ts_ok(f'{d}.error_at')}"
            f" AND {int_ok(f'{d}.http_status', 100, 599)}"
            f" AND ({d}.product_id IS NULL OR {self.product_ok(f'{d}.product_id')})"
            f" AND ({d}.order_id IS NULL OR {hex_id_ok(f'{d}.order_id', 'order_')})",
        }
        return (
            f"({d} IS NOT NULL AND {d}._corrupt IS NULL"
            f" AND {self.only_keys('e.details', DETAILS[t])} AND {checks[t]})"
        )

    def text_scan_ok(self):
        """control_character and unpaired_surrogate: only escapes can carry
        them, so only texts with a backslash are searched."""
        found = []
        if "control_character" in self.reasons:
            found.append(f"text RLIKE {sql_str(CONTROL_RE)}")
        if "unpaired_surrogate" in self.reasons:
            found.append(f"text RLIKE {sql_str(SURROGATE_RE)}")
        if not found:
            return "true"
        return f"(instr(text, '\\\\') = 0 OR NOT ({' OR '.join(found)}))"

    def valid(self):
        cities = ", ".join(
            f"{sql_str(c)}, array({sql_list(names)})"
            for c, names in self.d["cities"].items()
        )
        envelope = " AND ".join(
            [
                "e IS NOT NULL",
                "e._corrupt IS NULL",
                self.only_keys("text", ENVELOPE),
                self.text_scan_ok(),
                "e.schema_version = 1",
                self.in_set("e.event_type", "eventTypes"),
                f"e.event_id RLIKE {sql_str(UUID7_RE)}",
                self.ts_ok("e.event_ts"),
                self.in_set("e.level", "levels"),
                self.in_set("e.service", "services"),
                self.user_ok("e.user_id"),
                hex_id_ok("e.session_id", "sess_"),
                self.in_set("e.device_type", "deviceTypes"),
                "g IS NOT NULL",
                "g._corrupt IS NULL",
                self.only_keys("e.geo", GEO),
                f"array_contains(map({cities})[g.country], g.city)",
                int_ok("e.response_time_ms", 0, self.lim["maxResponseTimeMs"]),
                "e.details IS NOT NULL",
            ]
        )
        by_type = " ".join(f"WHEN '{t}' THEN {self.details_ok(t)}" for t in DETAILS)
        return (
            f"coalesce({envelope} AND CASE e.event_type {by_type} ELSE false END,"
            " false)"
        )


def ts(c):
    return f'to_timestamp({c}, "{TS_FMT}")'


def text_ok(c, max_len):
    """1..max_len UTF-16 code units, as JavaScript's string length."""
    return (
        f"({c} IS NOT NULL AND {c} <> '' AND (octet_length({c}) <= {max_len}"
        f" OR octet_length(encode({c}, 'UTF-16BE')) <= {2 * max_len}))"
    )


def int_ok(c, lo, hi):
    return f"({c} IS NOT NULL AND {c} BETWEEN {lo} AND {hi})"


def cents(c):
    # Math.round(v * 100), for the non-negative values that can pass.
    return f"floor({c} * 100 + 0.5)"


def hex_id_ok(c, prefix):
    return f"({c} RLIKE '^{prefix}[0-9a-f]{{16}}$')"


# --------------------------------------------------------------- columns ----


def flat_columns():
    """The 40 columns of FLAT_COLUMNS, in order, with their types."""

    def first(*exprs):
        return f"coalesce({', '.join(exprs)})"

    def single(t, field):
        # An order's only line's field; null for multi-line orders.
        return f"IF(size(l_{t}) = 1, l_{t}[0].v.{field}, NULL)"

    def money(c):
        return f"CAST({c} AS DECIMAL(12,2))"

    return [
        ("event_id", "e.event_id"),
        ("schema_version", "CAST(e.schema_version AS SMALLINT)"),
        ("event_type", "e.event_type"),
        ("event_ts", ts("e.event_ts")),
        ("level", "e.level"),
        ("service", "e.service"),
        ("user_id", "e.user_id"),
        ("session_id", "e.session_id"),
        ("device_type", "e.device_type"),
        ("geo_country", "g.country"),
        ("geo_city", "g.city"),
        ("response_time_ms", "e.response_time_ms"),
        (
            "product_id",
            first(
                "d_product_view.product_id",
                "d_add_to_cart.product_id",
                *(single(t, "product_id") for t in ORDERS),
                "d_error.product_id",
            ),
        ),
        (
            "quantity",
            first("d_add_to_cart.quantity", *(single(t, "quantity") for t in ORDERS)),
        ),
        (
            "unit_price",
            money(
                first(
                    "d_product_view.unit_price",
                    "d_add_to_cart.unit_price",
                    *(single(t, "unit_price") for t in ORDERS),
                )
            ),
        ),
        ("order_id", first(*(f"d_{t}.order_id" for t in ORDERS), "d_error.order_id")),
        (
            "amount",
            money(
                first(
                    "d_purchase.amount",
                    "d_order_complete.amount",
                    "d_order_failed.attempted_amount",
                )
            ),
        ),
        ("payment_method", first(*(f"d_{t}.payment_method" for t in ORDERS))),
        ("shipping_method", "d_order_complete.shipping_method"),
        ("shipping_address", "d_purchase.shipping_address"),
        (
            "delivery_estimate",
            "to_date(d_order_complete.delivery_estimate, 'yyyy-MM-dd')",
        ),
        ("completed_at", ts("d_order_complete.completed_at")),
        ("failed_at", ts("d_order_failed.failed_at")),
        ("failure_reason", "d_order_failed.failure_reason"),
        (
            "items_json",
            first(*(f"concat('[', array_join(d_{t}.items, ','), ']')" for t in ORDERS)),
        ),
        ("search_query", "d_search.query"),
        ("results_count", "d_search.results_count"),
        ("filter_category", "f.category"),
        ("filter_price_range", "f.price_range"),
        ("filter_brand", "f.brand"),
        ("searched_at", ts("d_search.searched_at")),
        ("error_code", "d_error.error_code"),
        ("error_message", "d_error.message"),
        ("error_at", ts("d_error.error_at")),
        ("http_status", "d_error.http_status"),
        ("details_json", "e.details"),
        ("kafka_topic", "topic"),
        ("kafka_partition", "partition"),
        ("kafka_offset", "offset"),
        ("kafka_timestamp", "timestamp"),
    ]


def build(records, rules):
    """Kafka records → the flat rows of the valid events (rejects dropped)."""
    r = Rules(rules)
    kafka = ["topic", "partition", "offset", "timestamp"]
    # 1. Size and UTF-8 (a lossless round trip), then the envelope.
    step = records.selectExpr(
        *kafka,
        f"IF(octet_length(value) <= {r.lim['maxEventBytes']}"
        " AND encode(CAST(value AS STRING), 'UTF-8') = value,"
        " CAST(value AS STRING), NULL) AS text",
    ).selectExpr("*", f"{parse('text', ENVELOPE)} AS e")
    # 2. geo, and the details of the event's own type.
    step = step.selectExpr(
        "*",
        f"{parse('e.geo', GEO)} AS g",
        *(
            f"IF(e.event_type = '{t}', {parse('e.details', schema)}, NULL) AS d_{t}"
            for t, schema in DETAILS.items()
        ),
    )
    # 3. Search filters and order lines (each line keeps its text).
    step = step.selectExpr(
        "*",
        f"{parse('d_search.filters', FILTERS)} AS f",
        *(
            f"transform(d_{t}.items, x -> named_struct('text', x, 'v', {parse('x', ITEM)}))"
            f" AS l_{t}"
            for t in ORDERS
        ),
    )
    # 4. Valid rows only, as the flat columns. A generator (inline) keeps the
    # valid rows instead of a filter: Spark would push a filter below the
    # projections above and parse every record's JSON twice.
    row = ", ".join(f"{expr} AS {name}" for name, expr in flat_columns())
    flat = step.selectExpr(f"inline(IF({r.valid()}, array(struct({row})), NULL))")
    return flat.withColumn(
        "event_date", F.date_format("event_ts", "yyyy-MM-dd")
    ).withColumn("event_hour", F.date_format("event_ts", "HH"))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--rules", required=True, help="JSON file of sets and limits")
    p.add_argument("--explain", action="store_true")
    a = p.parse_args(argv)
    with open(a.rules) as f:
        rules = json.load(f)

    spark = SparkSession.builder.appName("logpipe-spark-peer").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    records = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", a.bootstrap)
        .option("subscribe", a.topic)
        .option("startingOffsets", "earliest")
        .load()
    )
    flat = build(records, rules)
    if a.explain:
        flat.explain("formatted")
    t0 = time.time()
    query = (
        flat.writeStream.format("parquet")
        .option("path", a.output)
        .option("checkpointLocation", a.checkpoint)
        .partitionBy("event_date", "event_hour")
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    progress = [p for p in query.recentProgress if p["numInputRows"] > 0]
    print(
        json.dumps(
            {
                "rowsIn": sum(p["numInputRows"] for p in progress),
                "batches": len(progress),
                "batchMs": [p["durationMs"].get("triggerExecution", 0) for p in progress],
                "queryMs": round((time.time() - t0) * 1000),
            }
        ),
        flush=True,
    )
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
