import { ValidationError } from '@factline/core';
import { isPromiseLike } from '@factline/core/adapter';
import type { Database, Statement } from 'better-sqlite3';

/**
 * Package-internal: the transaction handle SQLite handlers get instead of the
 * connection (inbox handlers, projection handlers, inline projections). It
 * behaves as the connection while its transaction runs, and refuses every
 * statement once it ended (committed or rolled back): an `async` handler's
 * continuation, or a handle kept for later, would otherwise write in
 * autocommit, outside the transaction that failed or committed without it.
 */

/** Own property of a handle: false once its transaction ended. */
const live = Symbol('factline.sqlite.handleLive');
/** Property of every handle (on its prototype): the connection it stands for. */
const connection = Symbol('factline.sqlite.handleConnection');

interface HandleFields {
  [live]: boolean;
  [connection]: Database;
}

/** What work through an ended handle throws: a `ValidationError` at `tx`, before anything is written. */
export function transactionEndedError(): ValidationError {
  return new ValidationError({
    path: 'tx',
    message:
      "the handler's transaction has ended (committed or rolled back), so its handle refuses further work: write before the handler returns (SQLite handlers must be synchronous), never from a later callback or after an await",
  });
}

const check = (handle: unknown): void => {
  if ((handle as HandleFields)[live] !== true) throw transactionEndedError();
};

/** A statement prepared through a handle: refused, like the handle, once the transaction ended. */
class HandleStatement {
  readonly #statement: Statement;
  readonly #handle: HandleFields;
  constructor(statement: Statement, handle: HandleFields) {
    this.#statement = statement;
    this.#handle = handle;
  }
  get database(): Database {
    return this.#handle as unknown as Database;
  }
  get source(): string {
    return this.#statement.source;
  }
  get reader(): boolean {
    return this.#statement.reader;
  }
  get readonly(): boolean {
    return this.#statement.readonly;
  }
  get busy(): boolean {
    return this.#statement.busy;
  }
  run(...params: unknown[]) {
    check(this.#handle);
    return this.#statement.run(...params);
  }
  get(...params: unknown[]) {
    check(this.#handle);
    return this.#statement.get(...params);
  }
  all(...params: unknown[]) {
    check(this.#handle);
    return this.#statement.all(...params);
  }
  *iterate(...params: unknown[]) {
    check(this.#handle);
    const rows = this.#statement.iterate(...params);
    try {
      for (const row of rows) {
        yield row;
        // The loop's body ran between rows: the transaction may have ended meanwhile.
        check(this.#handle);
      }
    } finally {
      rows.return?.();
    }
  }
  columns() {
    check(this.#handle);
    return this.#statement.columns();
  }
  pluck(toggle?: boolean) {
    check(this.#handle);
    this.#statement.pluck(toggle);
    return this;
  }
  expand(toggle?: boolean) {
    check(this.#handle);
    this.#statement.expand(toggle);
    return this;
  }
  raw(toggle?: boolean) {
    check(this.#handle);
    this.#statement.raw(toggle);
    return this;
  }
  safeIntegers(toggle?: boolean) {
    check(this.#handle);
    this.#statement.safeIntegers(toggle);
    return this;
  }
  bind(...params: unknown[]) {
    check(this.#handle);
    this.#statement.bind(...params);
    return this;
  }
}

type AnyFunction = (...args: unknown[]) => unknown;

/** `fn` (a transaction function of the connection), refused once `handle`'s transaction ended; its variants too. */
const guardTransactionFunction = (handle: HandleFields, fn: Record<string, AnyFunction> & AnyFunction) => {
  const guard = (variant: AnyFunction) =>
    function (this: unknown, ...args: unknown[]) {
      check(handle);
      return variant.apply(this, args);
    };
  const guarded = guard(fn) as unknown as Record<string, unknown>;
  for (const variant of ['default', 'deferred', 'immediate', 'exclusive']) {
    guarded[variant] = guard(fn[variant] as AnyFunction);
  }
  guarded.database = handle;
  return guarded;
};

/**
 * The shared prototype of a connection's handles: inherits from the connection
 * (so its getters, `inTransaction`, `name`, `open`..., and `instanceof` work)
 * and overrides every method that runs or prepares SQL with a checked one.
 */
const prototypes = new WeakMap<Database, object>();
const prototypeOf = (db: Database): object => {
  let proto = prototypes.get(db);
  if (proto) return proto;
  const methods: Record<string, AnyFunction> = {
    prepare(this: HandleFields, source: unknown) {
      check(this);
      return new HandleStatement(db.prepare(source as string), this);
    },
    transaction(this: HandleFields, fn: unknown) {
      check(this);
      return guardTransactionFunction(this, db.transaction(fn as AnyFunction) as never);
    },
  };
  // The others run on the connection and return it: through a handle they return the handle.
  for (const name of [
    'exec',
    'function',
    'aggregate',
    'table',
    'loadExtension',
    'defaultSafeIntegers',
    'unsafeMode',
    'close',
  ] as const) {
    const method = db[name] as AnyFunction;
    methods[name] = function (this: HandleFields, ...args: unknown[]) {
      check(this);
      const result = method.apply(db, args);
      return result === db ? this : result;
    };
  }
  for (const name of ['pragma', 'backup', 'serialize'] as const) {
    const method = db[name] as AnyFunction;
    methods[name] = function (this: HandleFields, ...args: unknown[]) {
      check(this);
      return method.apply(db, args);
    };
  }
  proto = Object.create(db, {
    ...Object.fromEntries(Object.entries(methods).map(([name, value]) => [name, { value }])),
    [connection]: { value: db },
  }) as object;
  prototypes.set(db, proto);
  return proto;
};

/** A transaction's handle on `db`, live until `endTransactionHandle`. Cheap: one object per transaction. */
export function openTransactionHandle(db: Database): Database {
  const handle = Object.create(prototypeOf(db)) as HandleFields;
  handle[live] = true;
  return handle as unknown as Database;
}

/** Ends `handle`: from now on it, and every statement prepared through it, throws `transactionEndedError`. */
export function endTransactionHandle(handle: Database): void {
  (handle as unknown as HandleFields)[live] = false;
}

/**
 * The connection `db` stands for: `db` itself, or, for a live handle, its
 * connection. Throws `transactionEndedError` for an ended handle. For code that
 * accepts a handler's handle wherever a connection is (identity checks,
 * statements cached per connection).
 */
export function connectionOf(db: Database): Database {
  const underlying = (db as unknown as Partial<HandleFields>)[connection];
  if (underlying === undefined) return db;
  check(db);
  return underlying;
}

/**
 * Runs `work` with a fresh handle on `db` (inside the caller's open
 * transaction) and ends the handle when `work` returns or throws. A promise
 * `work` returns is not awaited (better-sqlite3 transactions are synchronous):
 * it is returned for the caller to refuse, and what it rejects with later is
 * reported as a process warning, never as an unhandled rejection.
 */
export function withTransactionHandle<T>(db: Database, work: (tx: Database) => T, what: string): T {
  const handle = openTransactionHandle(db);
  let result: T;
  try {
    result = work(handle);
  } finally {
    endTransactionHandle(handle);
  }
  if (isPromiseLike(result)) reportLateFailure(result, what);
  return result;
}

/** An async handler's continuation that failed after its transaction ended: reported, never left unhandled. */
export function reportLateFailure(result: PromiseLike<unknown>, what: string): void {
  Promise.resolve(result).catch((error: unknown) => {
    const reason = error instanceof Error ? error.message : String(error);
    process.emitWarning(`${what} failed after its transaction ended: ${reason}`, {
      type: 'FactlineWarning',
      code: 'FACTLINE_LATE_HANDLER_FAILURE',
      detail: error instanceof Error && error.stack ? error.stack : undefined,
    });
  });
}
