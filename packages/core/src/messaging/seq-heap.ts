/**
 * A binary min-heap of items ordered by their `seq` number: the in-memory
 * transport's order of keys and entries by publish order.
 *
 * @example
 * const heap = new SeqHeap<{ seq: number }>();
 * heap.push({ seq: 2 });
 * heap.push({ seq: 1 });
 * heap.pop(); // { seq: 1 }
 */
export class SeqHeap<T extends { seq: number }> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    let i = items.length;
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = items[parent] as T;
      if (above.seq <= item.seq) break;
      items[i] = above;
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    const n = items.length;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && (items[right] as T).seq < (items[left] as T).seq ? right : left;
      const below = items[child] as T;
      if (below.seq >= last.seq) break;
      items[i] = below;
      i = child;
    }
    items[i] = last;
    return top;
  }
}
