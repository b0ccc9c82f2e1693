import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

const kilnBin = fileURLToPath(new URL("../kiln.js", import.meta.url));

interface SeenRequest {
  method: string;
  url: URL;
  body: string;
}

const seen: SeenRequest[] = [];

/** Canned answers of the invoke route, one per function name, as the real server gives them. */
function answer(name: string, response: ServerResponse): void {
  const taskHeaders = { "kiln-task-id": "t1", "kiln-attempt": "1", "kiln-start-latency-ms": "3" };
  const error = (status: number, code: string, details: unknown, headers: Record<string, string> = {}) => {
    response.writeHead(status, { "content-type": "application/json", ...headers });
    response.end(JSON.stringify({ error: { code, message: "server message", details } }));
  };
  switch (name) {
    case "hello":
      response.writeHead(200, { "content-type": "application/json; charset=utf-8", ...taskHeaders });
      response.end(JSON.stringify({ greeting: "Hello, x!" }));
      return;
    case "shout":
      response.writeHead(200, { "content-type": "text/plain; charset=utf-8", ...taskHeaders });
      response.end("HELLO");
      return;
    case "slow":
      response.writeHead(202, {
        "content-type": "application/json",
        location: "/v1/projects/default/tasks/t1",
      });
      response.end(
        JSON.stringify({
          task: { id: "t1", state: "running" },
          resultUrl: "/v1/projects/default/tasks/t1/wait",
        }),
      );
      return;
    case "busy":
      error(429, "TOO_MANY_REQUESTS", { taskId: "t1" }, { "retry-after": "2" });
      return;
    case "boom":
      error(502, "FUNCTION_FAILED", {
        taskId: "t1",
        state: "failed",
        failure: { kind: "handler_error", message: "boom", retryable: true },
      });
      return;
    default:
      error(404, "FUNCTION_NOT_FOUND", { index: 0 });
  }
}

const server = createServer((request: IncomingMessage, response: ServerResponse) => {
  let body = "";
  request.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
  request.on("end", () => {
    const url = new URL(request.url ?? "/", "http://kiln.test");
    seen.push({ method: request.method ?? "", url, body });
    answer(/\/functions\/([^/]+)\/invoke$/.exec(url.pathname)?.[1] ?? "", response);
  });
});

before(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve)));
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Runs `kiln invoke <args>` against the fake server; resolves with its exit code and output. */
function invoke(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { port } = server.address() as AddressInfo;
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("KILN_")));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [kilnBin, "invoke", ...args],
      { env: { ...env, KILN_URL: `http://127.0.0.1:${port}`, KILN_TOKEN: "secret" }, timeout: 20_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

test("prints a JSON result pretty and exits 0, sending the payload and flags to the invoke route", async () => {
  seen.length = 0;
  const { code, stdout } = await invoke("hello", '{"name":"x"}', "--wait", "5", "--timeout", "9");
  assert.equal(code, 0);
  assert.equal(stdout, '{\n  "greeting": "Hello, x!"\n}\n');
  const request = seen[0];
  assert.equal(request?.method, "POST");
  assert.equal(request?.url.pathname, "/v1/projects/default/functions/hello/invoke");
  assert.equal(request?.url.searchParams.get("wait"), "5");
  assert.equal(request?.url.searchParams.get("timeoutS"), "9");
  assert.equal(request?.body, '{"name":"x"}');
});

test("sends a payload that is not JSON as a JSON string and prints a text result as is", async () => {
  seen.length = 0;
  const { code, stdout } = await invoke("shout", "hello there", "--cancel-on-disconnect");
  assert.equal(code, 0);
  assert.equal(stdout, "HELLO\n");
  assert.equal(seen[0]?.body, '"hello there"');
  assert.equal(seen[0]?.url.searchParams.get("cancelOnDisconnect"), "true");
});

test("exits 3 and says how to follow the task when it is still running after the wait", async () => {
  const { code, stdout, stderr } = await invoke("slow", "--wait", "1");
  assert.equal(code, 3);
  assert.equal(stdout, "");
  assert.match(stderr, /still running after the wait: task t1/);
  assert.match(stderr, /kiln task t1/);
});

test("prints the whole outcome with --json", async () => {
  const { code, stdout } = await invoke("hello", "--json");
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(stdout), {
    status: "succeeded",
    result: { greeting: "Hello, x!" },
    taskId: "t1",
    attempt: 1,
    startLatencyMs: 3,
  });
});

test("a refused invocation prints TOO_MANY_REQUESTS with the time to retry after and exits 1", async () => {
  const { code, stderr } = await invoke("busy");
  assert.equal(code, 1);
  assert.equal(stderr, "TOO_MANY_REQUESTS: server message (retry after 2 s)\n");
});

test("a failed function prints FUNCTION_FAILED with the failure's kind and message and exits 1", async () => {
  const { code, stdout, stderr } = await invoke("boom");
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.match(stderr, /^FUNCTION_FAILED: handler_error: boom\n/);
});

test("other API errors print code: message and exit 1", async () => {
  const { code, stderr } = await invoke("missing");
  assert.equal(code, 1);
  assert.equal(stderr, "FUNCTION_NOT_FOUND: server message\n");
});
