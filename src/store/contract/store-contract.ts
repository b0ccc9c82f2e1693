/**
 * The `Store` contract: the behaviour every adapter must show, as one suite run against each of them,
 * in one part per port (`project-catalog-contract.ts`, `plan-catalog-contract.ts`,
 * `function-catalog-contract.ts`, `task-queue-contract.ts`, `task-reads-contract.ts`,
 * `callback-outbox-contract.ts`, `token-registry-contract.ts`). `makeStore` returns a fresh, empty store;
 * `options.storePlanLimitsJson` writes into the adapter's database as an older version would have (the
 * one test that needs it is skipped, saying so, without it).
 */
import { describe } from "node:test";
import type { Store } from "../store.js";
import { runCallbackOutboxContract } from "./callback-outbox-contract.js";
import { runFunctionCatalogContract } from "./function-catalog-contract.js";
import { runPlanCatalogContract, type StorePlanLimitsJson } from "./plan-catalog-contract.js";
import { runProjectCatalogContract } from "./project-catalog-contract.js";
import { runTaskQueueContract } from "./task-queue-contract.js";
import { runTaskReadsContract } from "./task-reads-contract.js";
import { runTokenRegistryContract } from "./token-registry-contract.js";

export function runStoreContract(
  adapter: string,
  makeStore: () => Promise<Store>,
  options: { skip?: string | false; storePlanLimitsJson?: StorePlanLimitsJson } = {},
): void {
  describe(`Store contract: ${adapter}`, { skip: options.skip ?? false }, () => {
    describe("ProjectCatalog", () => runProjectCatalogContract(makeStore));
    describe("PlanCatalog", () => runPlanCatalogContract(makeStore, options.storePlanLimitsJson));
    describe("FunctionCatalog", () => runFunctionCatalogContract(makeStore));
    describe("TaskQueue", () => runTaskQueueContract(makeStore));
    describe("TaskReads", () => runTaskReadsContract(makeStore));
    describe("CallbackOutbox", () => runCallbackOutboxContract(makeStore));
    describe("TokenRegistry", () => runTokenRegistryContract(makeStore));
  });
}
