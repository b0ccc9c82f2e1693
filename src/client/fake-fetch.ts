/** For SDK tests: a `fetch` that records each request and answers what the test says, without a socket. */

export interface SeenRequest {
  method: string;
  url: URL;
  headers: Headers;
  body: unknown;
}

export interface FakeAnswer {
  status?: number;
  /** Sent as JSON unless `text` is given. */
  body?: unknown;
  /** Sent as is. */
  text?: string;
  headers?: Record<string, string>;
}

/** A fetch that records requests and answers each with `answer(request)`, as JSON unless told otherwise. */
export function createFakeFetch(answer: (request: SeenRequest) => FakeAnswer) {
  const seen: SeenRequest[] = [];
  const fetch: typeof globalThis.fetch = (input, init) => {
    const request: SeenRequest = {
      method: init?.method ?? "GET",
      url: new URL(input instanceof Request ? input.url : input),
      headers: new Headers(init?.headers),
      body: typeof init?.body === "string" ? JSON.parse(init.body) : init?.body,
    };
    seen.push(request);
    const { status = 200, body, text, headers = {} } = answer(request);
    const contentType: Record<string, string> =
      text === undefined ? { "content-type": "application/json; charset=utf-8" } : {};
    // A 204 has no body at all (the Response constructor refuses one).
    const payload = status === 204 ? null : (text ?? JSON.stringify(body));
    return Promise.resolve(new Response(payload, { status, headers: { ...contentType, ...headers } }));
  };
  return { fetch, seen };
}

/** What a request looked like, in one comparable value. */
export function describeRequest(request: SeenRequest | undefined) {
  return {
    method: request?.method,
    path: request?.url.pathname,
    query: Object.fromEntries(request?.url.searchParams ?? []),
    body: request?.body,
  };
}
