/**
 * How deeply JSON text nests. Payloads and results cross the node as text and are parsed and
 * serialised again on the way (V8's `JSON.stringify` recurses: ~6,000 levels overflow its stack), so
 * text nested deeper than `maxJsonDepth` is refused before anything parses it.
 */

/** Arrays and objects inside one another, at most: deep enough for real data, far from the stack's end. */
export const maxJsonDepth = 100;

/**
 * Whether the JSON text nests arrays and objects deeper than `limit`. A linear scan that keeps no
 * stack; it does not validate the text (a parse does that afterwards).
 */
export function exceedsJsonDepth(text: string, limit = maxJsonDepth): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 0x5c)
        i++; // backslash: the next character is escaped
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) {
      inString = true;
    } else if (char === 0x5b || char === 0x7b) {
      if (++depth > limit) return true;
    } else if (char === 0x5d || char === 0x7d) {
      depth--;
    }
  }
  return false;
}
