/** HTTP to one Kiln server: URL building, the bearer token, timeouts, and turning failures into errors. */
import { KilnApiError } from "./kiln-api-error.js";

export interface TransportOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:7878`. */
  url: string;
  token: string | null;
  requestTimeoutMs: number;
  fetch: typeof globalThis.fetch;
}

export interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  /** Sent as `application/json`. */
  json?: unknown;
  /** Sent as is, with `contentType`. */
  body?: Uint8Array;
  contentType?: string;
  /** Overrides the transport's `requestTimeoutMs` (long polls need more). */
  timeoutMs?: number;
}

/** A 2xx answer as it arrived: routes whose answer is not always JSON read it themselves. */
export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
}

export interface Transport {
  /** Resolves with a 2xx answer; throws `KilnApiError` otherwise. */
  request: (method: string, path: string, options?: RequestOptions) => Promise<RawResponse>;
  /** Resolves with the parsed JSON body of a 2xx answer; throws `KilnApiError` otherwise. */
  requestJson: <T>(method: string, path: string, options?: RequestOptions) => Promise<T>;
  /** Resolves with the body of a 2xx answer as text; throws `KilnApiError` otherwise. */
  requestText: (method: string, path: string, options?: RequestOptions) => Promise<string>;
}

export function createTransport(options: TransportOptions): Transport {
  const baseUrl = options.url.replace(/\/+$/, "");
  // Called unbound: browsers reject a fetch whose `this` is not the global object.
  const fetchUrl = options.fetch;

  async function send(method: string, path: string, request: RequestOptions): Promise<RawResponse> {
    const url = new URL(baseUrl + path);
    for (const [key, value] of Object.entries(request.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { accept: "application/json" };
    if (options.token !== null) headers.authorization = `Bearer ${options.token}`;
    let body: string | Uint8Array | undefined;
    if (request.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(request.json);
    } else if (request.body !== undefined) {
      headers["content-type"] = request.contentType ?? "application/octet-stream";
      body = request.body;
    }
    const timeoutMs = request.timeoutMs ?? options.requestTimeoutMs;
    let response: Response;
    let text: string;
    try {
      response = await fetchUrl(url, {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw describeNetworkError(error, `${method} ${url.origin}${url.pathname}`, timeoutMs);
    }
    if (!response.ok) throw KilnApiError.fromResponse(response.status, text, response.headers);
    return { status: response.status, headers: response.headers, text };
  }

  return {
    request(method: string, path: string, request: RequestOptions = {}): Promise<RawResponse> {
      return send(method, path, request);
    },
    async requestJson<T>(method: string, path: string, request: RequestOptions = {}): Promise<T> {
      const { text } = await send(method, path, request);
      try {
        return JSON.parse(text) as T;
      } catch (error) {
        throw new KilnApiError(
          "UNEXPECTED_RESPONSE",
          `${method} ${path} answered with a body that is not JSON`,
          {
            status: 200,
            details: { body: text.slice(0, 2000) },
            cause: error,
          },
        );
      }
    },
    async requestText(method: string, path: string, request: RequestOptions = {}): Promise<string> {
      return (await send(method, path, request)).text;
    },
  };
}

function describeNetworkError(error: unknown, target: string, timeoutMs: number): KilnApiError {
  if (error instanceof Error && error.name === "TimeoutError") {
    return new KilnApiError("NETWORK_ERROR", `${target}: no answer within ${timeoutMs / 1000} s`, {
      cause: error,
    });
  }
  // fetch reports "fetch failed" and keeps the useful part (ECONNREFUSED, ENOTFOUND, …) in `cause`.
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new KilnApiError("NETWORK_ERROR", `${target}: ${reason}`, { cause: error });
}
