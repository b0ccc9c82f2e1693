/** The benchmark's client of a Kiln node's HTTP API: keep-alive calls, deploying the no-op function. */
import http from "node:http";
import { fileURLToPath } from "node:url";
import * as tar from "tar";

/** A node's base URL and the headers of every call. */
export interface Api {
  url: string;
  headers: Record<string, string>;
}

export interface TaskView {
  id: string;
  state: string;
  result: string | null;
}

// node:http with keep-alive: a thinner client than fetch, so the figures are mostly the server's.
const agent = new http.Agent({ keepAlive: true });

/** One call under `/v1/projects/default`; rejects on a status of 300 or more. */
export function call<T>(api: Api, method: string, route: string, body?: unknown): Promise<T> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const url = new URL(`${api.url}/v1/projects/default${route}`);
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method,
        agent,
        headers: text === undefined ? api.headers : { ...api.headers, "content-type": "application/json" },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const answer = Buffer.concat(chunks).toString();
          if ((response.statusCode ?? 500) >= 300)
            reject(new Error(`${method} ${route}: ${response.statusCode} ${answer}`));
          else resolve(JSON.parse(answer) as T);
        });
      },
    );
    request.on("error", reject);
    request.end(text);
  });
}

/** Sandboxes the node has alive or starting (`GET /healthz`). */
export async function countSandboxes(api: Api): Promise<number> {
  const response = await fetch(`${api.url}/healthz`);
  const health = (await response.json()) as { sandboxes: { sandboxes: number } };
  return health.sandboxes.sandboxes;
}

/** Deploys `bench/functions/noop` as `noop` with `maxConcurrency`. */
export async function deployNoop(api: Api, maxConcurrency: number): Promise<void> {
  const dir = fileURLToPath(new URL("../../bench/functions/noop", import.meta.url));
  const chunks: Buffer[] = [];
  for await (const chunk of tar.c({ gzip: true, cwd: dir, portable: true }, ["."])) chunks.push(chunk);
  const response = await fetch(`${api.url}/v1/projects/default/functions/noop`, {
    method: "PUT",
    headers: { ...api.headers, "content-type": "application/gzip" },
    body: Buffer.concat(chunks),
  });
  if (!response.ok) throw new Error(`deploy: ${response.status} ${await response.text()}`);
  await call(api, "PATCH", "/functions/noop", { maxConcurrency });
}
