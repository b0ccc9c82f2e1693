/**
 * Callbacks are signed with a key of their project, kept here so every node signs alike (each node
 * had a file of its own). Filled in at a project's first callback; the `default` project takes the key
 * file of the first node that starts, so receivers of that node keep verifying.
 */
export const up = `
ALTER TABLE projects ADD COLUMN callback_secret text;
`;
