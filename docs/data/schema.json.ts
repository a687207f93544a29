/**
 * The event schema's enumerations for the pages' filters and legends, from
 * the one module that owns them (pipeline/events/schema.ts).
 */
import {
  COUNTRIES,
  DEVICE_TYPES,
  ERROR_CODES,
  EVENT_TYPES,
  LEVELS,
  PAYMENT_METHODS,
} from "../../pipeline/events/schema.ts";

const countries = Object.entries(COUNTRIES).map(([code, c]) => ({
  code,
  name: c.name,
  cities: c.cities.map((city) => ({ ...city })),
}));

console.log(JSON.stringify({
  eventTypes: EVENT_TYPES,
  levels: LEVELS,
  devices: DEVICE_TYPES,
  paymentMethods: PAYMENT_METHODS,
  countries,
  errorCodes: Object.keys(ERROR_CODES),
}));
