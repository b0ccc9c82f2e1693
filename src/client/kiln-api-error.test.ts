import assert from "node:assert/strict";
import { test } from "node:test";
import { KilnApiError } from "./kiln-api-error.js";

test("turns the API's error body into code, status, message and details", () => {
  const body = JSON.stringify({
    error: {
      code: "FUNCTION_NOT_FOUND",
      message: "No function 'x' in project 'default'",
      details: { name: "x" },
    },
  });
  const error = KilnApiError.fromResponse(404, body);
  assert.ok(error instanceof Error);
  assert.equal(error.name, "KilnApiError");
  assert.equal(error.code, "FUNCTION_NOT_FOUND");
  assert.equal(error.status, 404);
  assert.equal(error.message, "No function 'x' in project 'default'");
  assert.deepEqual(error.details, { name: "x" });
});

test("reports a body that is not the API's error shape as UNEXPECTED_RESPONSE with the status", () => {
  const error = KilnApiError.fromResponse(502, "<html><body>Bad Gateway</body></html>");
  assert.equal(error.code, "UNEXPECTED_RESPONSE");
  assert.equal(error.status, 502);
  assert.match(error.message, /^HTTP 502: .*Bad Gateway/);
});

test("an empty error body still names the status", () => {
  const error = KilnApiError.fromResponse(500, "");
  assert.equal(error.code, "UNEXPECTED_RESPONSE");
  assert.equal(error.message, "HTTP 500: (empty body)");
});

test("reads Retry-After as seconds, or as an HTTP date turned into seconds from now", () => {
  const body = JSON.stringify({ error: { code: "TOO_MANY_REQUESTS", message: "busy", details: null } });
  const inSeconds = KilnApiError.fromResponse(429, body, new Headers({ "retry-after": "5" }));
  assert.equal(inSeconds.retryAfterS, 5);
  const date = new Date(Date.now() + 120_000).toUTCString();
  const asDate = KilnApiError.fromResponse(429, body, new Headers({ "retry-after": date }));
  assert.ok(asDate.retryAfterS !== null && asDate.retryAfterS >= 119 && asDate.retryAfterS <= 121);
  assert.equal(
    KilnApiError.fromResponse(429, body, new Headers({ "retry-after": "soon" })).retryAfterS,
    null,
  );
  assert.equal(KilnApiError.fromResponse(429, body).retryAfterS, null);
});
