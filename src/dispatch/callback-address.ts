/**
 * Which addresses a callback may reach. A callback URL is chosen by whoever creates a task, and the
 * node POSTs to it from inside the operator's network: without this check a tenant could make the
 * node call its database, its admin ports or the cloud metadata service (169.254.169.254).
 */
import { BlockList, isIP } from "node:net";

const refusedRanges: { reason: string; subnets: [string, number, "ipv4" | "ipv6"][] }[] = [
  {
    reason: "a loopback address",
    subnets: [
      ["127.0.0.0", 8, "ipv4"],
      ["::1", 128, "ipv6"],
    ],
  },
  {
    reason: "a private address",
    subnets: [
      ["10.0.0.0", 8, "ipv4"],
      ["172.16.0.0", 12, "ipv4"],
      ["192.168.0.0", 16, "ipv4"],
      ["100.64.0.0", 10, "ipv4"],
      ["192.0.0.0", 24, "ipv4"],
      ["198.18.0.0", 15, "ipv4"],
    ],
  },
  {
    reason: "a link-local address (where cloud metadata services live)",
    subnets: [
      ["169.254.0.0", 16, "ipv4"],
      ["fe80::", 10, "ipv6"],
    ],
  },
  { reason: "a unique-local address", subnets: [["fc00::", 7, "ipv6"]] },
  {
    reason: "an unspecified address",
    subnets: [
      ["0.0.0.0", 8, "ipv4"],
      ["::", 128, "ipv6"],
    ],
  },
  {
    reason: "a multicast or reserved address",
    subnets: [
      ["224.0.0.0", 3, "ipv4"],
      ["ff00::", 8, "ipv6"],
    ],
  },
  // NAT64 maps every IPv4 address, private ones included, into this prefix.
  { reason: "a NAT64 address", subnets: [["64:ff9b::", 96, "ipv6"]] },
];

const blockLists = refusedRanges.map(({ reason, subnets }) => {
  const list = new BlockList();
  for (const [network, prefix, family] of subnets) list.addSubnet(network, prefix, family);
  return { reason, list };
});

/** Why a callback may not go to this IP address (IPv4-mapped IPv6 counts as its IPv4), or null. */
export function refusedCallbackAddress(address: string): string | null {
  const family = isIP(address);
  if (family === 0) return null;
  const type = family === 4 ? "ipv4" : "ipv6";
  return blockLists.find(({ list }) => list.check(address, type))?.reason ?? null;
}

/**
 * Why a callback URL is refused before any lookup, or null: a literal IP address in a refused range,
 * or `localhost`. Names are checked again after DNS resolution, at delivery time.
 */
export function refusedCallbackUrl(url: URL): string | null {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (host === "localhost" || host.endsWith(".localhost")) return "a loopback address";
  return refusedCallbackAddress(host);
}
