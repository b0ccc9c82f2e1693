/**
 * Fails its first two attempts with an ordinary (retryable) error and succeeds on the third.
 * @param {unknown} _payload
 * @param {{ attempt: number }} ctx
 */
export default function failTwice(_payload, ctx) {
  if (ctx.attempt < 3) throw new Error(`attempt ${ctx.attempt} fails on purpose`);
  return { succeededOnAttempt: ctx.attempt };
}
