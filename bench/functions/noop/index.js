/** Does nothing but say when its handler started (CLOCK_MONOTONIC, comparable across processes). */
export default async function noop() {
  return process.hrtime.bigint().toString();
}
