/** Callback URLs: a task's outcome is POSTed there once it ends, with retries until delivered. */
export const up = `
ALTER TABLE tasks ADD COLUMN callback_url TEXT;
-- NULL: no callback; 'pending' (due at callback_next_at), 'delivered' or 'failed' (retries used up)
ALTER TABLE tasks ADD COLUMN callback_state TEXT;
ALTER TABLE tasks ADD COLUMN callback_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN callback_next_at INTEGER;
CREATE INDEX tasks_callbacks_due ON tasks (callback_next_at) WHERE callback_state = 'pending';
`;
