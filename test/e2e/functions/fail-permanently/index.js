/**
 * Throws an error marked `retryable = false`: no retry may follow, whatever the function's `retries`.
 * @param {unknown} _payload
 * @param {{ attempt: number }} ctx
 */
export default function failPermanently(_payload, ctx) {
  throw Object.assign(new Error(`attempt ${ctx.attempt}: this input can never work`), { retryable: false });
}
