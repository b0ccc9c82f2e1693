/** The `TokenRegistry` part of the `Store` contract: tokens found by digest, listed, revoked and used. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import type { NewToken, Store, TokenRecord, TokenScope } from "../store.js";
import { at, project, storeWithFunction } from "./contract-fixtures.js";

const digestOf = (secret: string) => createHash("sha256").update(secret).digest();

/** A token whose secret is its id. */
function newToken(id: string, scope: TokenScope, createdAt = at(1), expiresAt: Date | null = null): NewToken {
  return { id, name: `name of ${id}`, digest: digestOf(id), scope, createdAt, expiresAt };
}

/** The record of a token as created. */
function recordOf({ digest: _digest, ...token }: NewToken): TokenRecord {
  return { ...token, lastUsedAt: null, revokedAt: null };
}

export function runTokenRegistryContract(makeStore: () => Promise<Store>): void {
  test("finds a token by its digest with its scope and times, admin and project tokens of each role", async () => {
    const store = await storeWithFunction(makeStore);
    const tokens = [
      newToken("tok_admin", { kind: "admin" }),
      newToken("tok_deploy", { kind: "project", project, role: "deploy" }, at(2), at(1000)),
      newToken("tok_run", { kind: "project", project, role: "run" }, at(3)),
      newToken("tok_read", { kind: "project", project, role: "read" }, at(4)),
    ];
    for (const token of tokens) assert.equal(await store.createToken(token), true);
    for (const token of tokens) assert.deepEqual(await store.findToken(token.digest), recordOf(token));
    assert.equal(await store.findToken(digestOf("tok_unknown")), null);
    await store.close();
  });

  test("refuses a token for a project that does not exist, and stores nothing", async () => {
    const store = await storeWithFunction(makeStore);
    const ghost = newToken("tok_ghost", { kind: "project", project: "ghost", role: "read" });
    assert.equal(await store.createToken(ghost), false);
    assert.equal(await store.findToken(ghost.digest), null);
    assert.deepEqual(await store.listTokens(), []);
    await store.close();
  });

  test("refuses a second token with the digest of another: a digest finds one token", async () => {
    const store = await storeWithFunction(makeStore);
    const first = newToken("tok_first", { kind: "admin" });
    await store.createToken(first);
    await assert.rejects(
      store.createToken({ ...newToken("tok_second", { kind: "admin" }), digest: first.digest }),
    );
    assert.deepEqual(await store.findToken(first.digest), recordOf(first));
    await store.close();
  });

  test("lists tokens newest first, all of them or one project's", async () => {
    const store = await storeWithFunction(makeStore);
    await store.ensureProject("other", at(0));
    const admin = newToken("tok_a", { kind: "admin" }, at(1));
    const older = newToken("tok_b", { kind: "project", project, role: "run" }, at(3));
    const elsewhere = newToken("tok_c", { kind: "project", project: "other", role: "read" }, at(2));
    const newer = newToken("tok_d", { kind: "project", project, role: "read" }, at(3));
    for (const token of [admin, older, elsewhere, newer]) await store.createToken(token);
    const ids = (tokens: TokenRecord[]) => tokens.map((token) => token.id);
    assert.deepEqual(
      ids(await store.listTokens()),
      ["tok_d", "tok_b", "tok_c", "tok_a"],
      "created in the same millisecond, the later first",
    );
    assert.deepEqual(ids(await store.listTokens(project)), ["tok_d", "tok_b"]);
    assert.deepEqual(ids(await store.listTokens("other")), ["tok_c"]);
    assert.deepEqual(await store.listTokens("ghost"), []);
    await store.close();
  });

  test("revoking a token again keeps the first revocation time; a revoked token is still found", async () => {
    const store = await storeWithFunction(makeStore);
    const token = newToken("tok_revoked", { kind: "project", project, role: "deploy" });
    const kept = newToken("tok_kept", { kind: "admin" });
    await store.createToken(token);
    await store.createToken(kept);
    const revoked = { ...recordOf(token), revokedAt: at(5) };
    assert.deepEqual(await store.revokeToken(token.id, at(5)), revoked);
    assert.deepEqual(await store.revokeToken(token.id, at(9)), revoked);
    assert.deepEqual(await store.findToken(token.digest), revoked);
    assert.equal(await store.revokeToken("tok_unknown", at(9)), null);
    assert.deepEqual(await store.findToken(kept.digest), recordOf(kept), "another token is left alone");
    await store.close();
  });

  test("recording use keeps each token's latest time of use", async () => {
    const store = await storeWithFunction(makeStore);
    const a = newToken("tok_a", { kind: "admin" });
    const b = newToken("tok_b", { kind: "project", project, role: "run" });
    await store.createToken(a);
    await store.createToken(b);
    const lastUsed = async () =>
      [await store.findToken(a.digest), await store.findToken(b.digest)].map((token) => token?.lastUsedAt);
    await store.recordTokenUse([a.id, b.id], at(10));
    assert.deepEqual(await lastUsed(), [at(10), at(10)]);
    await store.recordTokenUse([a.id], at(5));
    assert.deepEqual(await lastUsed(), [at(10), at(10)], "an earlier time does not wind it back");
    await store.recordTokenUse([a.id, "tok_unknown"], at(20));
    assert.deepEqual(await lastUsed(), [at(20), at(10)]);
    await store.recordTokenUse([], at(30));
    assert.deepEqual(await lastUsed(), [at(20), at(10)]);
    await store.close();
  });

  test("deleting a project deletes its tokens and no others", async () => {
    const store = await storeWithFunction(makeStore);
    await store.ensureProject("other", at(0));
    const admin = newToken("tok_admin", { kind: "admin" }, at(1));
    const mine = newToken("tok_mine", { kind: "project", project, role: "deploy" }, at(2));
    const theirs = newToken("tok_theirs", { kind: "project", project: "other", role: "run" }, at(3));
    for (const token of [admin, mine, theirs]) await store.createToken(token);
    assert.deepEqual(await store.deleteProject(project), { deleted: true });
    assert.equal(await store.findToken(mine.digest), null);
    assert.deepEqual(
      (await store.listTokens()).map((token) => token.id),
      [theirs.id, admin.id],
    );
    assert.deepEqual(await store.listTokens(project), []);
    await store.close();
  });
}
