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

/**
 * The throttle source of a client address: what every per-address limit counts by. IPv4 is the
 * address itself (/32); IPv4-mapped IPv6 counts as IPv4; IPv6 is its network of `ipv6Prefix` bits
 * in RFC 5952 form (`2001:db8:1:2::/64`), since one subscriber usually holds a whole /64 (or /48).
 * Anything that is not an IP address (a Unix socket peer) is its own source.
 */
export function throttleSource(address: string, ipv6Prefix: number): string {
  const ip = normalizeIp(address);
  const version = net.isIP(ip);
  if (version === 4) return ip;
  if (version !== 6) return ip;
  const words = ipv6Words(ip);
  if (
    words[0] === 0 &&
    words[1] === 0 &&
    words[2] === 0 &&
    words[3] === 0 &&
    words[4] === 0 &&
    words[5] === 0xffff
  ) {
    const [a = 0, b = 0] = [words[6], words[7]];
    return `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  }
  const prefix = Math.max(0, Math.min(128, Math.trunc(ipv6Prefix)));
  const masked = words.map((w, i) => {
    const bits = Math.max(0, Math.min(16, prefix - i * 16));
    return bits === 16 ? w : bits === 0 ? 0 : w & ((0xffff << (16 - bits)) & 0xffff);
  });
  return `${formatIpv6(masked)}/${prefix}`;
}

/** The eight 16-bit words of a valid IPv6 address (with `::` and a trailing dotted IPv4 allowed). */
function ipv6Words(ip: string): number[] {
  let text = ip.split('%')[0] as string; // a zone id is not part of the address
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((h) => Number.parseInt(h, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const zeros = Array.from({ length: 8 - left.length - right.length }, () => 0);
  return [...left, ...zeros, ...right];
}

/** RFC 5952: lower-case hex without leading zeros, the longest run of two or more zero words as `::`. */
function formatIpv6(words: readonly number[]): string {
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (ws: readonly number[]) => ws.map((w) => w.toString(16)).join(':');
  if (best < 0) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLength))}`;
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
