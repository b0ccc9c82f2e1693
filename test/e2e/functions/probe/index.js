export default async (payload, ctx) => ({ ok: true, attempt: ctx.attempt, payload });
