/**
 * The node's end of the channel to a sandbox process: frames on the sandbox's fd 3 (a socketpair), its
 * stdout drained and its stderr kept as a bounded tail. Everything the sandbox sends is hostile: no byte
 * it sends can throw inside a read callback, and the node never holds more than one bounded frame.
 */
import type { ChildProcess } from "node:child_process";
import type { Duplex } from "node:stream";
import { exceedsJsonDepth } from "../domain/json-depth.js";
import { encodeFrame, FrameDecoder, FrameError } from "../sandbox/frame-codec.js";
import { channelFd, parseFromSandbox, type FromSandbox, type ToSandbox } from "../sandbox/protocol.js";
import type { SandboxChannel, SandboxExit } from "./sandbox-backend.js";

const maxStderrTail = 8192;
/** Every message of the protocol nests a few levels at most (results travel as strings). */
const maxMessageDepth = 8;
/** A sandbox that closed its end of the channel but lives on can no longer be talked to. */
const closedChannelGraceMs = 1000;

/** Wraps a child process started with a `'pipe'` at `channelFd`; call it right after the spawn. */
export function createChildProcessChannel(child: ChildProcess, maxFrameBytes: number): SandboxChannel {
  const socket = child.stdio[channelFd] as Duplex | null | undefined;
  let onMessage: (message: FromSandbox, frameBytes: number) => void = () => {};
  let onMalformed: (reason: string) => void = () => {};
  let onExit: (exit: SandboxExit) => void = () => {};
  let stderrTail = "";
  let broken = false;
  let exited = false;
  let closedTimer: NodeJS.Timeout | undefined;

  const fail = (reason: string) => {
    if (broken || exited) return;
    broken = true;
    socket?.destroy();
    onMalformed(reason);
  };
  const exit = (code: number | null, signal: NodeJS.Signals | null) => {
    if (exited) return;
    exited = true;
    clearTimeout(closedTimer);
    socket?.destroy();
    onExit({ code, signal, stderrTail });
  };

  const decoder = new FrameDecoder(maxFrameBytes, (text, bytes) => {
    if (broken) return;
    if (exceedsJsonDepth(text, maxMessageDepth))
      return fail(`it nests deeper than ${maxMessageDepth} levels`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return fail(`it is not JSON (${(error as Error).message.slice(0, 200)})`);
    }
    const message = parseFromSandbox(value);
    if ("invalid" in message) return fail(message.invalid);
    onMessage(message, bytes);
  });

  socket?.on("data", (chunk: Buffer) => {
    if (broken) return;
    try {
      decoder.push(chunk);
    } catch (error) {
      // Nothing thrown here may reach the event loop: it would end the node.
      const reason =
        error instanceof FrameError ? error.message : `the node could not handle it (${String(error)})`;
      fail(reason);
    }
  });
  socket?.on("error", () => {}); // the exit (or a malformed frame) says what happened
  socket?.on("end", () => {
    closedTimer = setTimeout(() => fail("the sandbox closed its channel to the node"), closedChannelGraceMs);
    closedTimer.unref();
  });
  child.stdout?.on("error", () => {});
  child.stdout?.resume();
  child.stderr?.on("error", () => {});
  child.stderr?.on("data", (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString()).slice(-maxStderrTail);
  });
  child.on("error", (error) => {
    // Emitted when the spawn failed (then no 'exit' follows) or a signal could not be sent.
    if (child.pid === undefined) {
      stderrTail += `kiln: the sandbox did not start: ${error.message}\n`;
      exit(null, null);
    }
  });
  child.once("exit", (code, signal) => exit(code, signal));

  return {
    send(message: ToSandbox) {
      if (broken || exited || socket == null || socket.destroyed) return;
      socket.write(encodeFrame(message));
    },
    onMessage(listener) {
      onMessage = listener;
    },
    onMalformed(listener) {
      onMalformed = listener;
    },
    onExit(listener) {
      onExit = listener;
    },
  };
}
