/**
 * Polls `probe` until it returns something truthy, and returns that; past the
 * deadline, fails naming what it waited for.
 */
export async function waitFor<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 15_000, pollMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
