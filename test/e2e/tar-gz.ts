/**
 * Builds a tar.gz by hand, entry names taken literally: a packer like `tar` strips `../` from names,
 * and a test of unsafe archives needs them kept.
 */
import { gzipSync } from "node:zlib";

export interface TarEntry {
  /** The name exactly as it goes into the header (at most 100 bytes). */
  path: string;
  content: string;
}

const blockSize = 512;

export function createTarGz(entries: readonly TarEntry[]): Uint8Array {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const content = Buffer.from(entry.content);
    blocks.push(createHeader(entry.path, content.length), pad(content));
  }
  blocks.push(Buffer.alloc(2 * blockSize)); // the end-of-archive marker
  return gzipSync(Buffer.concat(blocks));
}

/** A ustar header of a regular file (mode 0644, owner 0, mtime 1980-01-01). */
function createHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(blockSize);
  if (Buffer.byteLength(name) > 100) throw new RangeError(`tar entry name too long: ${name}`);
  header.write(name, 0, "utf8");
  writeOctal(header, 100, 8, 0o644);
  writeOctal(header, 108, 8, 0);
  writeOctal(header, 116, 8, 0);
  writeOctal(header, 124, 12, size);
  writeOctal(header, 136, 12, Date.UTC(1980, 0, 1) / 1000);
  header.write("0", 156, "ascii"); // a regular file
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
