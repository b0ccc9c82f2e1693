/**
 * The tokens kept in the store, as the auth hook looks them up: by digest, each answer cached for at
 * most `ttlMs`, so a revocation (or an expiry moved) reaches every node within that time without any
 * message between nodes. Last use is written at most once a minute per token and node.
 */
import type { FastifyBaseLogger } from "fastify";
import type { TokenRecord, TokenRegistry } from "../store/token-registry.js";

interface Entry {
  lookup: Promise<TokenRecord | null>;
  fetchedAtMs: number;
}

/** Guesses of wrong tokens are cached too; past this many entries the cache starts again empty. */
const maxEntries = 10_000;
const lastUseResolutionMs = 60_000;

export class StoredTokens {
  private readonly cache = new Map<string, Entry>();

  constructor(
    private readonly registry: TokenRegistry,
    private readonly options: { ttlMs: number; logger: FastifyBaseLogger },
  ) {}

  find(digest: Buffer): Promise<TokenRecord | null> {
    const key = digest.toString("hex");
    const nowMs = Date.now();
    const cached = this.cache.get(key);
    if (cached !== undefined && nowMs - cached.fetchedAtMs < this.options.ttlMs) return cached.lookup;
    if (this.cache.size >= maxEntries) this.cache.clear();
    const lookup = this.registry.findToken(digest).then((record) => {
      if (record !== null) this.noteUse(record, nowMs);
      return record;
    });
    const entry = { lookup, fetchedAtMs: nowMs };
    this.cache.set(key, entry);
    // A failed lookup (the database unavailable) is not remembered: the next request asks again.
    lookup.catch(() => {
      if (this.cache.get(key) === entry) this.cache.delete(key);
    });
    return lookup;
  }

  private noteUse(record: TokenRecord, nowMs: number): void {
    if (record.revokedAt !== null || (record.expiresAt !== null && record.expiresAt.getTime() <= nowMs))
      return;
    if (record.lastUsedAt !== null && nowMs - record.lastUsedAt.getTime() < lastUseResolutionMs) return;
    this.registry.recordTokenUse([record.id], new Date(nowMs)).catch((error: unknown) => {
      this.options.logger.warn({ err: error, tokenId: record.id }, "recording a token's last use failed");
    });
  }
}
