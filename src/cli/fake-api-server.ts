/**
 * For CLI tests: an HTTP server on 127.0.0.1 that records each request and answers what the test's
 * function says, and a way to run the built `kiln` against it in a child process, as a user runs it.
 */
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";

const kilnBin = fileURLToPath(new URL("./kiln.js", import.meta.url));

export interface SeenRequest {
  method: string;
  url: URL;
  authorization: string | undefined;
  /** The body as text; `""` when none was sent. */
  body: string;
}

export interface CannedAnswer {
  status: number;
  /** Sent as JSON; none when left out. */
  body?: unknown;
}

export interface KilnRun {
  code: number;
  stdout: string;
  stderr: string;
}

export class FakeApiServer {
  readonly seen: SeenRequest[] = [];

  private constructor(private readonly server: Server) {}

  static async start(answer: (request: SeenRequest) => CannedAnswer): Promise<FakeApiServer> {
    const server = createServer();
    const fake = new FakeApiServer(server);
    server.on("request", (request, response) => {
      let body = "";
      request.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      request.on("end", () => {
        const seen = {
          method: request.method ?? "",
          url: new URL(request.url ?? "/", "http://kiln.test"),
          authorization: request.headers.authorization,
          body,
        };
        fake.seen.push(seen);
        const { status, body: answerBody } = answer(seen);
        if (answerBody === undefined) {
          response.writeHead(status).end();
        } else {
          response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(answerBody));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return fake;
  }

  /** Runs `kiln <args>` with this server as `KILN_URL`, the token `secret`, and no other `KILN_` variable but `env`. */
  runKiln(args: readonly string[], env: Record<string, string> = {}): Promise<KilnRun> {
    const { port } = this.server.address() as AddressInfo;
    const inherited = Object.entries(process.env).filter(([key]) => !key.startsWith("KILN_"));
    const childEnv = {
      ...Object.fromEntries(inherited),
      KILN_URL: `http://127.0.0.1:${port}`,
      KILN_TOKEN: "secret",
      ...env,
    };
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [kilnBin, ...args],
        { env: childEnv, timeout: 20_000 },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
