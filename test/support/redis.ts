import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';

/** The machine's shared Redis: tests use a key prefix of their own and delete their keys after. */
export const REDIS_URL = 'redis://127.0.0.1:6379';

/** `mwtest:<parts>:<random>:`, a prefix no other test run shares. */
export function uniqueRedisPrefix(...parts: string[]): string {
  return `mwtest:${parts.join(':')}:${randomBytes(4).toString('hex')}:`;
}

type Client = ReturnType<typeof createClient>;

async function eachKeyBatch(prefix: string, url: string, visit: (keys: string[], client: Client) => Promise<void>): Promise<void> {
  const client: Client = createClient({ url });
  await client.connect();
  try {
    for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
      const keys = batch as unknown as string[];
      if (keys.length) await visit(keys, client);
    }
  } finally {
    await client.quit();
  }
}

/** Deletes every key under a prefix; returns how many there were. */
export async function deleteRedisKeys(prefix: string, url = REDIS_URL): Promise<number> {
  let n = 0;
  await eachKeyBatch(prefix, url, async (keys, client) => {
    n += await client.del(keys);
  });
  return n;
}

export async function countRedisKeys(prefix: string, url = REDIS_URL): Promise<number> {
  let n = 0;
  await eachKeyBatch(prefix, url, async (keys) => {
    n += keys.length;
  });
  return n;
}
