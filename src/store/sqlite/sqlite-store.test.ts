import { runStoreContract } from "../contract/store-contract.js";
import { SqliteStore } from "./sqlite-store.js";

runStoreContract("SqliteStore", () =>
  Promise.resolve(new SqliteStore({ path: ":memory:", maxLogChars: 1000 })),
);
