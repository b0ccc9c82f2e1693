/**
 * Two changes to `running` that a drain on PostgreSQL measured:
 *
 * - It loses its index by node. Every claim inserts at its right end and every end deletes from it, so
 *   during a drain it fills with dead entries for the node's one key faster than autovacuum (which wakes
 *   once a minute) clears them: the end of a batch of attempts, planned to find its node's running rows
 *   through that index, read tens of thousands of dead entries per statement (2 ms a batch at 20,000
 *   tasks), and each claim's insert paid to skip them. Claims and ends reach `running` by its primary
 *   key; only recovery asks by node, rarely, and `running` holds no more live rows than the tasks
 *   claimed at once, so recovery reads the table instead.
 * - Its `slot_id` may be null: the attempt was claimed while its function had no `maxConcurrency`, and
 *   is not counted in `function_slots`. Every claim and end of a function updated its one slot row, so
 *   they all waited for each other on its lock (7 ms a statement in a drain of 16 sandboxes); a function
 *   without a limit has nothing to count. When a limit is set, the attempts still running are counted
 *   in (`countInRunningSql`).
 */
export const up = `
DROP INDEX running_by_node;
ALTER TABLE running ALTER COLUMN slot_id DROP NOT NULL;
`;
