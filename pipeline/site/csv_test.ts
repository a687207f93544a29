// The site's CSV downloads: RFC 4180 quoting, and no spreadsheet formulas.
import assert from "node:assert/strict";
import { toCsv } from "../../docs/components/table.js";

Deno.test("CSV: cells a spreadsheet would run as formulas are neutralised", () => {
  const rows = [
    { q: '=HYPERLINK("http://evil.example","x")', n: -5 },
    { q: "+cmd|' /C calc'!A0", n: "-12.50" },
    { q: "-2+3", n: 0 },
    { q: "@SUM(A1:A9)", n: 1.5 },
    { q: "\tTAB", n: "1e3" },
    { q: 'laptop, 15"', n: "+7" },
  ];
  assert.equal(
    toCsv(rows, ["q", "n"]),
    [
      "q,n",
      `"'=HYPERLINK(""http://evil.example"",""x"")",-5`,
      `'+cmd|' /C calc'!A0,-12.50`,
      `'-2+3,0`,
      `'@SUM(A1:A9),1.5`,
      `'\tTAB,1e3`,
      `"laptop, 15""",+7`,
      "",
    ].join("\r\n"),
  );
});
