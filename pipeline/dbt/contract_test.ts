/**
 * The dbt project's enumerations (vars in dbt/dbt_project.yml, used by every
 * accepted_values test) must equal the event contract's
 * (pipeline/events/schema.ts): a value added to the contract and not to dbt
 * would fail `dbt build` on real data, and the reverse would let bad data in.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import * as schema from "../events/schema.ts";
import { DBT_PROJECT_DIR } from "./toolchain.ts";

Deno.test("dbt accepted_values vars equal the event contract's enumerations", async () => {
  const project = parse(
    await Deno.readTextFile(`${DBT_PROJECT_DIR}/dbt_project.yml`),
  ) as {
    vars: Record<string, unknown>;
  };
  const expected: Record<string, readonly string[]> = {
    event_types: schema.EVENT_TYPES,
    levels: schema.LEVELS,
    device_types: schema.DEVICE_TYPES,
    countries: schema.COUNTRY_CODES,
    payment_methods: schema.PAYMENT_METHODS,
    shipping_methods: schema.SHIPPING_METHODS,
    services: schema.SERVICES,
    error_codes: schema.ERROR_CODE_LIST,
    failure_reasons: schema.FAILURE_REASON_LIST,
    categories: schema.CATEGORY_NAMES,
  };
  for (const [name, values] of Object.entries(expected)) {
    assert.deepEqual(
      [...(project.vars[name] as string[])].sort(),
      [...values].sort(),
      `dbt var ${name} differs from pipeline/events/schema.ts`,
    );
  }
});
