/**
 * Waits for a condition the server reaches on its own (a log line, a pool count, a health status),
 * checking every `everyMs`, and fails naming it after `timeoutMs`. The bound is a safety net for a
 * broken server, never the thing a test measures: set it generously. Resolves with the time taken.
 */
export async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  everyMs = 20,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (
      await Promise.resolve()
        .then(check)
        .catch(() => false)
    )
      return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
