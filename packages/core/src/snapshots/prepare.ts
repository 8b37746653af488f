import { isValidationError, ValidationError, type ValidationIssue } from '../errors/index.ts';
import { checkOptions, describeValue, type OptionKind, type OptionSpecOf } from '../options/check-options.ts';
import { checkJson } from '../store/json-checks.ts';
import { checkName, MAX_NAME_LENGTH, MAX_STREAM_ID_LENGTH } from '../store/validation.ts';
import { DEFAULT_SNAPSHOT_NAME, type Snapshot, type SnapshotKeyOptions, type SnapshotToSave } from './types.ts';

/** A snapshot checked and serialized, ready for an adapter to write. */
export interface PreparedSnapshot {
  streamId: string;
  name: string;
  version: number;
  lastEventId: string;
  snapshotVersion: number;
  /** The state as JSON text. */
  state: string;
  /** Epoch milliseconds. */
  takenAt: number;
}

/** A snapshot as an adapter reads it back: numbers may come as strings (PostgreSQL `int8`). */
export interface StoredSnapshot {
  streamId: string;
  name: string;
  version: number | string;
  lastEventId: string;
  snapshotVersion: number | string;
  /** The JSON text as written (select PostgreSQL's `json` as `::text`: a driver's parse is ambiguous for a string). */
  state: string;
  takenAt: number | string | Date;
}

const nameKind =
  (max: number): OptionKind =>
  (value) => {
    const issues: ValidationIssue[] = [];
    checkName(value, '', max, issues);
    return issues[0]?.message;
  };

/** The largest `snapshotVersion` (a state shape's number): what every store keeps (PostgreSQL's `integer`). */
export const MAX_SNAPSHOT_VERSION = 2_147_483_647;

/** A state shape's version: an integer from 1 to `MAX_SNAPSHOT_VERSION`, the same on every store. */
export const snapshotVersionKind: OptionKind = (value) =>
  typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_SNAPSHOT_VERSION
    ? undefined
    : `must be an integer from 1 to ${MAX_SNAPSHOT_VERSION}, got ${describeValue(value)}`;

const snapshotSpec: OptionSpecOf<SnapshotToSave> = {
  // Any stream id an event store takes (its `limits.maxStreamIdLength` may be above the default).
  streamId: nameKind(MAX_STREAM_ID_LENGTH),
  name: nameKind(MAX_NAME_LENGTH),
  version: 'positive-integer',
  lastEventId: nameKind(MAX_NAME_LENGTH),
  snapshotVersion: snapshotVersionKind,
  state: 'any',
  takenAt: 'date',
};
const required = ['streamId', 'version', 'lastEventId', 'snapshotVersion', 'state'];

/** The issues `checkOptions` found, instead of its throw, so they join the others. */
function collect(issues: ValidationIssue[], check: () => void): void {
  try {
    check();
  } catch (error) {
    if (!isValidationError(error)) throw error;
    issues.push(...error.issues);
  }
}

/**
 * Validates a snapshot to save and serializes its state: every problem (an
 * unknown key, a bad version, a state JSON cannot carry, at its path such as
 * `snapshot.state.lines[2].price`) in one `ValidationError`. The state is
 * serialized here, so later changes to the caller's object are not stored.
 *
 * @example
 * const row = prepareSnapshot(snapshot, Date.now);
 */
export function prepareSnapshot(value: unknown, now: () => number): PreparedSnapshot {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError({ path: 'snapshot', message: `must be an object, got ${describeValue(value)}` });
  }
  const issues: ValidationIssue[] = [];
  collect(issues, () => checkOptions(value, snapshotSpec, 'snapshot', { required }));
  const snapshot = value as SnapshotToSave;
  if (snapshot.state !== undefined) checkJson(snapshot.state, 'snapshot.state', issues, { allowNul: true });
  if (issues.length > 0) throw new ValidationError(issues);
  return {
    streamId: snapshot.streamId,
    name: snapshot.name ?? DEFAULT_SNAPSHOT_NAME,
    version: snapshot.version,
    lastEventId: snapshot.lastEventId,
    snapshotVersion: snapshot.snapshotVersion,
    state: JSON.stringify(snapshot.state),
    takenAt: snapshot.takenAt?.getTime() ?? now(),
  };
}

const keySpec: OptionSpecOf<SnapshotKeyOptions> = { name: nameKind(MAX_NAME_LENGTH) };

/**
 * Validates the stream id and options of `load` or `delete` (`where`) and
 * returns the snapshot's name.
 *
 * @example
 * const name = checkSnapshotKey(streamId, options, 'load');
 */
export function checkSnapshotKey(streamId: unknown, options: unknown, where: 'load' | 'delete'): string {
  const issues: ValidationIssue[] = [];
  checkName(streamId, 'streamId', MAX_STREAM_ID_LENGTH, issues);
  collect(issues, () => checkOptions(options as SnapshotKeyOptions | undefined, keySpec, `${where} options`));
  if (issues.length > 0) throw new ValidationError(issues);
  return (options as SnapshotKeyOptions | undefined)?.name ?? DEFAULT_SNAPSHOT_NAME;
}

/**
 * A stored snapshot as `load` returns it: the state parsed (a fresh object
 * each time), numbers and the date revived.
 *
 * @example
 * return row === undefined ? undefined : snapshotFromStored(row);
 */
export function snapshotFromStored<State>(stored: StoredSnapshot): Snapshot<State> {
  return {
    streamId: stored.streamId,
    name: stored.name,
    version: Number(stored.version),
    lastEventId: stored.lastEventId,
    snapshotVersion: Number(stored.snapshotVersion),
    state: JSON.parse(stored.state) as State,
    takenAt: stored.takenAt instanceof Date ? stored.takenAt : new Date(Number(stored.takenAt)),
  };
}
