/**
 * Builds a tar.gz by hand, entry names taken literally: a packer like `tar` strips `../` from names,
 * and a test of unsafe archives needs them kept.
 */
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { createGzip, gzipSync } from "node:zlib";

export interface TarEntry {
  /** The name exactly as it goes into the header (at most 100 bytes). */
  path: string;
  /** A regular file's content (the default), or, with `linkpath`, nothing: the entry is a symlink. */
  content?: string;
  /** The target of a symlink, exactly as it goes into the header (at most 100 bytes). */
  linkpath?: string;
  /** A directory entry. */
  directory?: true;
}

const blockSize = 512;

export function createTarGz(entries: readonly TarEntry[]): Uint8Array {
  return gzipSync(createTar(entries));
}

/** The uncompressed tar of `entries`, end-of-archive marker included. */
export function createTar(entries: readonly TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const content = Buffer.from(entry.content ?? "");
    if (entry.linkpath !== undefined) blocks.push(createHeader(entry.path, 0, "2", entry.linkpath));
    else if (entry.directory) blocks.push(createHeader(entry.path, 0, "5"));
    else blocks.push(createHeader(entry.path, content.length, "0"), pad(content));
  }
  blocks.push(Buffer.alloc(2 * blockSize)); // the end-of-archive marker
  return Buffer.concat(blocks);
}

/**
 * A gzip bomb: a small tar.gz whose one file, `name`, is `zeroBytes` of zeros (deflate packs them about
 * 1000 to 1), followed by `trailingZeroBytes` more zeros after the end of the archive, which no header
 * announces. Compressed as a stream, so the test never holds the inflated bytes itself.
 */
export async function createZeroBombTarGz(
  name: string,
  zeroBytes: number,
  trailingZeroBytes = 0,
): Promise<Buffer> {
  const chunk = Buffer.alloc(1024 * 1024);
  function* tar(): Generator<Buffer> {
    yield createHeader(name, zeroBytes, "0");
    // File content, its padding and the end marker are all zeros: one run of them.
    let remaining = zeroBytes + ((blockSize - (zeroBytes % blockSize)) % blockSize) + 2 * blockSize;
    remaining += trailingZeroBytes;
    while (remaining > 0) {
      const size = Math.min(remaining, chunk.length);
      yield chunk.subarray(0, size);
      remaining -= size;
    }
  }
  return buffer(Readable.from(tar()).pipe(createGzip({ level: 9 })));
}

/** A ustar header (mode 0644, 0755 for a directory, owner 0, mtime 1980-01-01). */
function createHeader(name: string, size: number, type: "0" | "2" | "5", linkpath = ""): Buffer {
  const header = Buffer.alloc(blockSize);
  if (Buffer.byteLength(name) > 100) throw new RangeError(`tar entry name too long: ${name}`);
  if (Buffer.byteLength(linkpath) > 100) throw new RangeError(`tar link target too long: ${linkpath}`);
  header.write(name, 0, "utf8");
  writeOctal(header, 100, 8, type === "5" ? 0o755 : 0o644);
  writeOctal(header, 108, 8, 0);
  writeOctal(header, 116, 8, 0);
  writeOctal(header, 124, 12, size);
  writeOctal(header, 136, 12, Date.UTC(1980, 0, 1) / 1000);
  header.write(type, 156, "ascii"); // 0 a regular file, 2 a symlink, 5 a directory
  header.write(linkpath, 157, "utf8");
  header.write("ustar\u000000", 257, "ascii");
  // The checksum is the sum of the header's bytes with its own field read as eight spaces.
  header.fill(" ", 148, 156);
  const checksum = header.reduce((sum, byte) => sum + byte, 0);
  header.write(`${checksum.toString(8).padStart(6, "0")}\u0000 `, 148, "ascii");
  return header;
}

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, "0")}\u0000`, offset, "ascii");
}

function pad(content: Buffer): Buffer {
  const padding = (blockSize - (content.length % blockSize)) % blockSize;
  return Buffer.concat([content, Buffer.alloc(padding)]);
}
