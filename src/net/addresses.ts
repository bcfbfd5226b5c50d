/**
 * Client addresses: CIDR lists (TRUSTED_PROXIES) and the address a call comes from. When the
 * peer is a trusted proxy, the client is the right-most `x-forwarded-for` entry that is not itself
 * trusted (each proxy appends the address it saw, so entries to the left of the first untrusted one
 * are the client's own claims and worth nothing); otherwise it is the peer, and an untrusted peer's
 * `x-forwarded-for` is ignored.
 */
import net from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** IPv4-mapped IPv6 (`::ffff:1.2.3.4`) as plain IPv4; anything else as given. */
export function normalizeIp(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return mapped ? (mapped[1] as string) : ip.toLowerCase();
}

/** Parses `10.0.0.0/8, 2001:db8::/32, 192.0.2.7`; throws naming the first bad entry. */
export function parseCidrs(text: string): Cidr[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const [ip = '', bits, extra] = entry.split('/');
      const address = normalizeIp(ip);
      const version = net.isIP(address);
      const max = version === 4 ? 32 : 128;
      const prefix = bits === undefined ? max : Number(bits);
      if (
        !version ||
        extra !== undefined ||
        !Number.isInteger(prefix) ||
        prefix < 0 ||
        prefix > max ||
        bits === ''
      ) {
        throw new Error(`"${entry.slice(0, 60)}" is not an IP address or CIDR block such as 10.0.0.0/8`);
      }
      return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' } as const;
    });
}

export interface AddressResolver {
  /** The client address of a call from `peer` (grpc-js `call.getPeer()`) with these `x-forwarded-for` values. */
  clientAddress(peer: string, forwardedFor: readonly string[]): string;
}

/** The IP of a grpc-js peer string: `1.2.3.4:5678`, `[::1]:5678`, `ipv4:…`, `unix:…`. */
export function peerIp(peer: string): string {
  const bare = peer.replace(/^(ipv4|ipv6):/, '');
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(bare);
  if (bracketed) return normalizeIp(bracketed[1] as string);
  const v4 = /^(\d+\.\d+\.\d+\.\d+)(?::\d+)?$/.exec(bare);
  if (v4) return v4[1] as string;
  return normalizeIp(bare);
}

export function createAddressResolver(trusted: readonly Cidr[]): AddressResolver {
  const list = new net.BlockList();
  for (const c of trusted) list.addSubnet(c.address, c.prefix, c.family);
  // BlockList.check builds a SocketAddress per call (measured: ~3 % of a cached GetUser's CPU), so
  // the answers are remembered; the map is emptied when it reaches 10 000 addresses
  const known = new Map<string, boolean>();
  const isTrusted = (ip: string) => {
    let trusted = known.get(ip);
    if (trusted === undefined) {
      const v = net.isIP(ip);
      trusted = v !== 0 && list.check(ip, v === 4 ? 'ipv4' : 'ipv6');
      if (known.size >= 10_000) known.clear();
      known.set(ip, trusted);
    }
    return trusted;
  };
  const resolve = (peer: string, forwardedFor: readonly string[]) => {
    let client = peerIp(peer);
    if (!isTrusted(client)) return client;
    const hops = forwardedFor
      .flatMap((v) => v.split(','))
      .map((s) => peerIp(s.trim()))
      .filter(Boolean);
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i] as string;
      if (!net.isIP(hop)) break; // not an address: trust stops at the last good hop
      client = hop;
      if (!isTrusted(hop)) break;
    }
    return client;
  };
  // the answer for one connection (its peer) with the same x-forwarded-for is the same every call:
  // remembered, for up to 10 000 such pairs of at most 200 characters
  const answers = new Map<string, string>();
  return {
    clientAddress(peer, forwardedFor) {
      const key = forwardedFor.length ? `${peer}|${forwardedFor.join('|')}` : peer;
      if (key.length > 200) return resolve(peer, forwardedFor); // long chains: not kept
      let client = answers.get(key);
      if (client === undefined) {
        client = resolve(peer, forwardedFor);
        if (answers.size >= 10_000) answers.clear();
        answers.set(key, client);
      }
      return client;
    },
  };
}
