/**
 * Gathers the calls made in one turn of the event loop into one request at
 * the next turn (one script call for many messages): `send` gets the items in
 * call order and resolves one result per item, in the same order; a failure
 * rejects every call of the batch.
 *
 * @example
 * const values = batchedCalls((keys: string[]) => client.sendCommand(['MGET', ...keys]) as Promise<(string | null)[]>);
 * const value = await values.call(key);
 */
export function batchedCalls<Item, Result>(send: (items: Item[]) => Promise<readonly Result[]>) {
  let items: Item[] = [];
  let waiters: { resolve(result: Result): void; reject(error: unknown): void }[] = [];
  let scheduled = false;

  const flush = () => {
    scheduled = false;
    const batch = items;
    const done = waiters;
    items = [];
    waiters = [];
    send(batch).then(
      (results) => {
        for (let i = 0; i < done.length; i++) (done[i] as (typeof done)[number]).resolve(results[i] as Result);
      },
      (error: unknown) => {
        for (const waiter of done) waiter.reject(error);
      },
    );
  };

  return {
    call(item: Item): Promise<Result> {
      return new Promise<Result>((resolve, reject) => {
        items.push(item);
        waiters.push({ resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
  };
}
