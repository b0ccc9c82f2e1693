/**
 * A function that tries to do harm, one way per `payload.action`; the isolation suite checks that every
 * attempt is denied or contained. It reports what it saw instead of throwing, where it survives.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { Worker } from "node:worker_threads";

const outcome = (fn) => {
  try {
    fn();
    return "allowed";
  } catch (error) {
    return error.code ?? error.message;
  }
};

const connect = (host, port) =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve("timeout");
    });
    socket.on("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.on("error", (error) => resolve(error.code));
  });

/** A message to the node as the harness would send it: a frame on fd 3 (or, on old nodes, Node's IPC). */
const sendToNode = (message) => {
  if (process.send) return process.send(message);
  const body = Buffer.from(JSON.stringify(message));
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  fs.writeSync(3, Buffer.concat([header, body]));
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Payloads seen by a hook on the harness's message events (see "hook-channel"). */
const seenByHook = [];

/** A thread one task leaves running in the harness, for a later task (see "swap-thread-for-child"). */
let lingering = null;

export default async function hostile(payload, ctx) {
  switch (payload.action) {
    case "ping":
      return "pong";
    case "count":
      globalThis.tasksSeen = (globalThis.tasksSeen ?? 0) + 1;
      return globalThis.tasksSeen;
    case "channel-garbage":
      fs.writeSync(3, "not json\n");
      await sleep(2000);
      return "wrote";
    case "channel-flood": {
      const chunk = Buffer.alloc(1024 * 1024, "x".charCodeAt(0));
      let written = 0;
      try {
        for (; written < payload.mb; written++) fs.writeSync(3, chunk);
      } catch (error) {
        return { written, error: error.code };
      }
      await sleep(2000);
      return { written };
    }
    case "forge-done":
      sendToNode({
        type: "done",
        taskId: ctx.taskId,
        result: payload.result,
        failure: null,
        log: "",
        rssBytes: 0,
        reusable: true,
      });
      return "forged";
    case "forge-deep-done":
      sendToNode({
        type: "done",
        taskId: ctx.taskId,
        result: "[".repeat(payload.depth) + "]".repeat(payload.depth),
        failure: null,
        log: "",
        rssBytes: 0,
        reusable: true,
      });
      return "forged";
    case "leftover-loop": {
      // The loop outlives the task unless someone outside the sandbox kills it.
      process.kill = () => true;
      spawn("/bin/sh", ["-c", "setsid sh -c 'while :; do sleep 1; done' &"], {
        detached: true,
        stdio: "ignore",
      }).unref();
      await sleep(300);
      return "spawned";
    }
    case "io-leftover":
      fs.writeFileSync("/kiln/io/left-behind", "secret of the previous task");
      return fs.readdirSync("/kiln/io");
    case "link-out":
      // Links a reset run from the host would follow out of the sandbox if it followed links.
      fs.symlinkSync(payload.target, "/tmp/link-out");
      fs.mkdirSync("/tmp/dir");
      fs.symlinkSync(payload.target, "/tmp/dir/link-out");
      fs.symlinkSync(payload.target, "/kiln/io/link-out");
      return fs.readdirSync("/tmp");
    case "list-io":
      return fs.readdirSync("/kiln/io");
    case "hook-channel":
      process.send = () => true;
      process.on("message", (message) => seenByHook.push(message));
      return "hooked";
    case "seen-by-hook":
      return seenByHook.filter((message) => message?.payload?.includes("secret-of-the-next-task"));
    case "late-rejection":
      setTimeout(() => Promise.reject(new Error("rejected after the handler returned")), 100);
      return "returned";
    case "wait-then-pong":
      await sleep(payload.ms);
      return "pong";
    case "buffers": {
      const hold = [];
      for (let i = 0; i < 1024; i++) hold.push(Buffer.alloc(1024 * 1024, 1));
      return hold.length;
    }
    case "heap": {
      const hold = [];
      for (;;) hold.push(new Array(100_000).fill({ grow: hold.length }));
    }
    case "loop":
      for (;;);
    case "fork-bomb": {
      let started = 0;
      let refused = 0;
      for (let i = 0; i < 500; i++) {
        try {
          const child = spawn("/bin/sleep", ["30"], { stdio: "ignore" });
          child.on("error", () => (refused += 1));
          started += 1;
        } catch {
          refused += 1;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      return { started, refused };
    }
    case "setsid-children": {
      for (let i = 0; i < 3; i++) spawn("/bin/sleep", ["1000"], { detached: true, stdio: "ignore" }).unref();
      spawn("/bin/sh", ["-c", "setsid sh -c 'sleep 1000 & sleep 1000' &"], { stdio: "ignore" }).unref();
      await new Promise((resolve) => setTimeout(resolve, 300));
      return "spawned";
    }
    case "linger-thread":
      lingering = new Worker("setInterval(() => {}, 1000)", { eval: true });
      await new Promise((resolve) => lingering.once("online", resolve));
      return "lingering";
    case "swap-thread-for-child": {
      // A child in place of a thread: the sandbox holds as many processes and threads as before.
      if (lingering === null) return "no lingering thread here";
      spawn("/usr/bin/setsid", ["/bin/sleep", "1001"], { detached: true, stdio: "ignore" }).unref();
      await sleep(100);
      await lingering.terminate();
      lingering = null;
      return "swapped";
    }
    case "list-processes":
      return fs
        .readdirSync("/proc")
        .filter((entry) => /^\d+$/.test(entry))
        .map((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim());
    case "read":
      return Object.fromEntries(payload.paths.map((file) => [file, outcome(() => fs.readFileSync(file))]));
    case "write":
      return Object.fromEntries(
        payload.paths.map((file) => [file, outcome(() => fs.writeFileSync(file, "x"))]),
      );
    case "connect":
      return Object.fromEntries(
        await Promise.all(
          payload.targets.map(async ({ host, port }) => [`${host}:${port}`, await connect(host, port)]),
        ),
      );
    case "fill-tmp": {
      const chunk = Buffer.alloc(1024 * 1024, 7);
      let written = 0;
      const result = outcome(() => {
        const fd = fs.openSync("/tmp/fill", "w");
        for (let i = 0; i < payload.mb; i++) {
          fs.writeSync(fd, chunk);
          written += 1;
        }
        fs.closeSync(fd);
      });
      return { result, writtenMb: written };
    }
    case "status": {
      const status = fs.readFileSync("/proc/self/status", "utf8");
      const field = (name) =>
        status
          .split("\n")
          .find((line) => line.startsWith(`${name}:`))
          ?.split(/\s+/)
          .slice(1);
      return { uid: field("Uid"), capEff: field("CapEff")?.[0], noNewPrivs: field("NoNewPrivs")?.[0] };
    }
    case "write-tmp":
      fs.writeFileSync("/tmp/left-behind", "secret of the previous task");
      return fs.readdirSync("/tmp");
    case "list-tmp":
      return fs.readdirSync("/tmp");
    case "many-files": {
      for (let i = 0; i < payload.count; i++) fs.writeFileSync(`/tmp/f${i}`, "");
      return process.getuid();
    }
    default:
      throw new Error(`unknown action ${payload.action}`);
  }
}
