/**
 * The HDFS zones, in one place: how committed files are named and laid out
 * (names.ts), the exactly-once commit protocol that makes them visible
 * (commit.ts), how the raw zone is listed (raw_listing.ts), the dead-letter
 * record (dead_letter.ts), readers of both zones (readers.ts) and the
 * exports pointer (exports.ts). The consumer writes the zones; the batch,
 * the audit, the site and the tests read them through this module only.
 */
export * from "./names.ts";
export * from "./commit.ts";
export * from "./raw_listing.ts";
export * from "./dead_letter.ts";
export * from "./readers.ts";
export * from "./exports.ts";
export * from "./base64.ts";
