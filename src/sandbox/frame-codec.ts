/**
 * The framing of the channel between a node and a sandbox (fd 3 of the sandbox): each message is a
 * 4-byte big-endian length and that many bytes of UTF-8 JSON. Used on both ends; the node's end treats
 * every byte as hostile, so the decoder never holds more than one frame of at most `maxFrameBytes`.
 */

const headerBytes = 4;

/** One message as a frame. */
export function encodeFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message));
  const frame = Buffer.allocUnsafe(headerBytes + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, headerBytes);
  return frame;
}

/** Why a stream of bytes is not a stream of frames; the decoder stops at the first one. */
export class FrameError extends Error {}

/**
 * Cuts a byte stream into frames. `push` calls `onFrame` with the text of each complete frame and
 * throws a `FrameError` at the first length over the bound (after which the decoder refuses more).
 */
export class FrameDecoder {
  private header = Buffer.alloc(headerBytes);
  private headerFilled = 0;
  private body: Buffer | null = null;
  private bodyFilled = 0;
  private failed = false;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly onFrame: (text: string, bytes: number) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.failed) throw new FrameError("the channel already failed");
    let offset = 0;
    while (offset < chunk.length) {
      if (this.body === null) {
        const taken = chunk.copy(
          this.header,
          this.headerFilled,
          offset,
          offset + headerBytes - this.headerFilled,
        );
        this.headerFilled += taken;
        offset += taken;
        if (this.headerFilled < headerBytes) return;
        const length = this.header.readUInt32BE(0);
        this.headerFilled = 0;
        if (length === 0 || length > this.maxFrameBytes) {
          this.failed = true;
          throw new FrameError(
            length === 0
              ? "a frame of length 0"
              : `a frame that declares ${length} bytes, over the limit of ${this.maxFrameBytes} bytes`,
          );
        }
        this.body = Buffer.allocUnsafe(length);
        this.bodyFilled = 0;
      }
      const taken = chunk.copy(
        this.body,
        this.bodyFilled,
        offset,
        offset + this.body.length - this.bodyFilled,
      );
      this.bodyFilled += taken;
      offset += taken;
      if (this.bodyFilled === this.body.length) {
        const body = this.body;
        this.body = null;
        this.onFrame(body.toString("utf8"), headerBytes + body.length);
      }
    }
  }

  /** Bytes of a frame begun but not finished (a sandbox that exits mid-frame sent a broken message). */
  get pendingBytes(): number {
    return this.body === null ? this.headerFilled : headerBytes + this.bodyFilled;
  }
}
