/** The smallest Kiln function: greets whoever the payload names. */
export default async function hello(payload, ctx) {
  const name = payload?.name ?? "world";
  ctx.log(`saying hello to ${name}`);
  return { greeting: `Hello, ${name}!`, taskId: ctx.taskId, attempt: ctx.attempt };
}
