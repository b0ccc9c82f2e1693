/** The payload argument of `kiln run` and `kiln invoke`: JSON when it parses, else the text itself. */

/**
 * Resolves with the payload `raw` stands for: JSON when it parses (`42`, `true`, `'{"a":1}'`), otherwise
 * the text as a string; `-` reads stdin (as is, trailing newline included); undefined stays undefined
 * (no payload).
 */
export async function readPayload(raw: string | undefined): Promise<unknown> {
  if (raw === undefined) return undefined;
  const text = raw === "-" ? await readStdin() : raw;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
