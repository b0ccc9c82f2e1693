/** Keeps docs/errors.md in step with the error catalog: same codes, same HTTP statuses. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { errorCatalog } from "./errors.js";

// This file runs as dist/src/domain/errors.test.js: the repository root is three levels up.
const doc = readFileSync(new URL("../../../docs/errors.md", import.meta.url), "utf8");
const clientHeading = "## Client and CLI codes";

/** The `| `CODE` | cell | …` rows of a markdown table, as [code, second cell]. */
function readCodeRows(markdown: string): [string, string][] {
  const rows: [string, string][] = [];
  for (const line of markdown.split("\n")) {
    const match = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*([^|]*?)\s*\|/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) rows.push([match[1], match[2]]);
  }
  return rows;
}

const [serverPart = "", clientPart = ""] = doc.split(clientHeading);
const serverRows = readCodeRows(serverPart);
const clientRows = readCodeRows(clientPart);

test("docs/errors.md has a server table and a separate client and CLI table", () => {
  assert.ok(doc.includes(clientHeading), `docs/errors.md has no '${clientHeading}' section`);
  assert.ok(serverRows.length > 0, "docs/errors.md has no server codes table");
  assert.ok(clientRows.length > 0, "docs/errors.md has no client and CLI codes table");
});

test("docs/errors.md lists every catalog code once, with its HTTP status", () => {
  for (const [code, { status }] of Object.entries(errorCatalog)) {
    const rows = serverRows.filter(([documented]) => documented === code);
    assert.equal(rows.length, 1, `${code} is listed ${rows.length} times in the server table`);
    assert.equal(rows[0]?.[1], String(status), `${code} has status ${status} in the catalog`);
  }
});

test("docs/errors.md lists no server code that the catalog does not have", () => {
  const unknown = serverRows.map(([code]) => code).filter((code) => !(code in errorCatalog));
  assert.deepEqual(unknown, [], "codes in docs/errors.md that src/domain/errors.ts does not define");
});

test("the client and CLI codes in docs/errors.md are not server codes", () => {
  const documented = clientRows.map(([code]) => code);
  for (const code of ["NETWORK_ERROR", "UNEXPECTED_RESPONSE", "USAGE_ERROR"]) {
    assert.ok(documented.includes(code), `${code} is not in the client and CLI table`);
  }
  assert.deepEqual(
    documented.filter((code) => code in errorCatalog),
    [],
    "a client-only code must not reuse a server code",
  );
});
