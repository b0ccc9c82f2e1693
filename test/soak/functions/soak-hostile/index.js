/**
 * The soak's hostile function: one way to misbehave per `payload.action`, each of which the node must
 * contain without growing, leaking or failing anyone else's task.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";

export default async function soakHostile(payload) {
  switch (payload.action) {
    case "buffers": {
      const hold = [];
      for (let i = 0; i < 512; i++) hold.push(Buffer.alloc(1024 * 1024, 1));
      return hold.length;
    }
    case "loop":
      for (;;);
    case "fork-bomb":
      for (let i = 0; i < 300; i++) spawn("/bin/sleep", ["30"], { stdio: "ignore" }).on("error", () => {});
      await new Promise((resolve) => setTimeout(resolve, 200));
      return "forked";
    case "leftovers":
      spawn("/bin/sh", ["-c", "setsid sh -c 'sleep 1000 & sleep 1000' &"], { stdio: "ignore" }).unref();
      fs.writeFileSync("/tmp/left-behind", "x".repeat(1024 * 1024));
      return "left";
    case "crash":
      process.exit(3);
    case "garbage-frame":
      fs.writeSync(3, "not json\n");
      await new Promise((resolve) => setTimeout(resolve, 100));
      return "sent";
    case "flood-channel": {
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      for (let i = 0; i < 64; i++) fs.writeSync(3, chunk);
      return "flooded";
    }
    case "big-log":
      for (let i = 0; i < 64; i++) console.log("y".repeat(64 * 1024));
      return "logged";
    case "late-rejection":
      setTimeout(() => Promise.reject(new Error("rejected after the handler returned")), 10);
      return "returned";
    default:
      throw new Error(`unknown action ${payload.action}`);
  }
}
