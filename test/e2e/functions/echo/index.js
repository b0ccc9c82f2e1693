/**
 * Returns its payload, so a test can tell every task's result apart.
 * @param {unknown} payload
 */
export default function echo(payload) {
  return { echo: payload };
}
