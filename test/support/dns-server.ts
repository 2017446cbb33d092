// A real DNS server on 127.0.0.1 (a free UDP+TCP port) serving the test's own
// zones, so code under test resolves with a real resolver and real packets.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dns2 = require('dns2');
const { Packet } = dns2;

export interface RecordSet {
  A?: string[];
  AAAA?: string[];
  /** Each entry one TXT record; long strings are split into 255-byte chunks. */
  TXT?: string[];
  PTR?: string[];
  MX?: { exchange: string; priority: number }[];
  CNAME?: string;
}

/** normal: answer from the zones; servfail: SERVFAIL to everything; silent: never answer (timeouts). */
export type DnsMode = 'normal' | 'servfail' | 'silent';

export interface TestDnsServer {
  port: number;
  /** For `[dns] servers` / DnsSettings.servers. */
  server: string;
  set(name: string, records: RecordSet): void;
  /** Adds to a name's records (e.g. a second TXT). */
  add(name: string, records: RecordSet): void;
  remove(name: string): void;
  mode: DnsMode;
  /** Names that never get an answer, whatever the mode (a timeout on one look-up). */
  silentNames: Set<string>;
  /** Names answered SERVFAIL, whatever the mode (a server failure on one look-up). */
  servfailNames: Set<string>;
  /** Names answered only after this many ms (slow, but within a look-up's own time-out). */
  delays: Map<string, number>;
  /** Every question received, as "TYPE name". */
  queries: string[];
  stop(): Promise<void>;
}

const TYPE_NAMES: Record<number, keyof RecordSet> = {
  [Packet.TYPE.A]: 'A',
  [Packet.TYPE.AAAA]: 'AAAA',
  [Packet.TYPE.TXT]: 'TXT',
  [Packet.TYPE.PTR]: 'PTR',
  [Packet.TYPE.MX]: 'MX',
  [Packet.TYPE.CNAME]: 'CNAME',
};

function chunks(text: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += 255) out.push(text.slice(i, i + 255));
  return out.length ? out : [''];
}

function normalise(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

export async function startDnsServer(zones: Record<string, RecordSet> = {}): Promise<TestDnsServer> {
  const records = new Map<string, RecordSet>();
  for (const [name, set] of Object.entries(zones)) records.set(normalise(name), { ...set });

  const api: TestDnsServer = {
    port: 0,
    server: '',
    mode: 'normal',
    silentNames: new Set(),
    servfailNames: new Set(),
    delays: new Map(),
    queries: [],
    set(name, set) {
      records.set(normalise(name), { ...set });
    },
    add(name, set) {
      const existing = records.get(normalise(name)) ?? {};
      const merged: any = { ...existing };
      for (const [type, values] of Object.entries(set)) {
        merged[type] = Array.isArray(values) ? [...((existing as any)[type] ?? []), ...values] : values;
      }
      records.set(normalise(name), merged);
    },
    remove(name) {
      records.delete(normalise(name));
    },
    stop: async () => {},
  };

  const server = dns2.createServer({
    udp: true,
    tcp: true,
    handle(request: any, send: (r: any) => void) {
      const response = Packet.createResponseFromRequest(request);
      const [question] = request.questions;
      const name = normalise(question.name);
      const typeName = TYPE_NAMES[question.type];
      api.queries.push(`${typeName ?? question.type} ${name}`);
      if (api.mode === 'silent' || api.silentNames.has(name)) return;
      if (api.mode === 'servfail' || api.servfailNames.has(name)) {
        response.header.rcode = Packet.RCODE.SERVFAIL;
        return send(response);
      }
      const set = records.get(name);
      if (!set) {
        response.header.rcode = Packet.RCODE.NXDOMAIN;
        return send(response);
      }
      const base = { name: question.name, class: Packet.CLASS.IN, ttl: 60 };
      if (set.CNAME && typeName !== 'CNAME') {
        response.answers.push({ ...base, type: Packet.TYPE.CNAME, domain: set.CNAME });
      }
      switch (typeName) {
        case 'A':
          for (const address of set.A ?? []) response.answers.push({ ...base, type: Packet.TYPE.A, address });
          break;
        case 'AAAA':
          for (const address of set.AAAA ?? []) response.answers.push({ ...base, type: Packet.TYPE.AAAA, address });
          break;
        case 'TXT':
          for (const text of set.TXT ?? []) response.answers.push({ ...base, type: Packet.TYPE.TXT, data: chunks(text) });
          break;
        case 'PTR':
          for (const domain of set.PTR ?? []) response.answers.push({ ...base, type: Packet.TYPE.PTR, domain });
          break;
        case 'MX':
          for (const mx of set.MX ?? []) response.answers.push({ ...base, type: Packet.TYPE.MX, ...mx });
          break;
        case 'CNAME':
          if (set.CNAME) response.answers.push({ ...base, type: Packet.TYPE.CNAME, domain: set.CNAME });
          break;
        default:
          break;
      }
      const delay = api.delays.get(name);
      if (delay) {
        setTimeout(() => {
          try {
            send(response);
          } catch {
            // Stopped meanwhile.
          }
        }, delay);
      }
      else send(response);
    },
  });
  server.on('requestError', () => {});
  const port = await freeUdpPort();
  await server.listen({ udp: { port, address: '127.0.0.1', type: 'udp4' }, tcp: { port, address: '127.0.0.1' } });
  api.port = port;
  api.server = `127.0.0.1:${port}`;
  api.stop = async () => {
    await server.close();
  };
  return api;
}

/** A port free for both UDP and TCP on 127.0.0.1. */
async function freeUdpPort(): Promise<number> {
  const dgram = await import('node:dgram');
  const net = await import('node:net');
  for (let attempt = 0; attempt < 20; attempt++) {
    const socket = dgram.createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => resolve(socket.address().port));
    });
    socket.close();
    const tcpFree = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (tcpFree) return port;
  }
  throw new Error('no free port for the test DNS server');
}
