// Bounded concurrency, in a module of its own: links.ts runs its process batches with it, and the
// resolver (also loaded in resolve-main's child process, which should stay small) its DNS queries.

/** Run tasks with at most `limit` in flight, started in array order (deterministic for fakes). */
export async function runLimited<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < tasks.length && failed === undefined) {
      const i = next++;
      try {
        results[i] = await tasks[i]!();
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  if (failed !== undefined) throw failed;
  return results;
}
