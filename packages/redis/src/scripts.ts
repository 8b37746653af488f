import { createHash } from 'node:crypto';
import type { RedisCommandSender } from './connection.ts';
import { deadLetterScripts } from './dead-letter-scripts.ts';
import { inboxScripts } from './inbox-scripts.ts';
import { transportScripts } from './transport-scripts.ts';

/**
 * Every Lua script of the package, by name: the transport's
 * (transport-scripts.ts), the inbox's (inbox-scripts.ts) and the dead-letter
 * store's (dead-letter-scripts.ts). Each runs atomically on the server.
 */
export const scripts = { ...transportScripts, ...deadLetterScripts, ...inboxScripts } as const;

export type ScriptName = keyof typeof scripts;

const shas = Object.fromEntries(
  Object.entries(scripts).map(([name, body]) => [name, createHash('sha1').update(body).digest('hex')]),
) as Record<ScriptName, string>;

/** Runs a script by its SHA, loading it on a NOSCRIPT (a fresh or restarted server). */
export async function runScript(
  client: RedisCommandSender,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  // One array, built once: a batch script call carries a few arguments per message.
  const command = new Array<string>(3 + keys.length + args.length);
  command[0] = 'EVALSHA';
  command[1] = shas[name];
  command[2] = String(keys.length);
  for (let i = 0; i < keys.length; i++) command[3 + i] = keys[i] as string;
  for (let i = 0; i < args.length; i++) command[3 + keys.length + i] = String(args[i]);
  try {
    return await client.sendCommand(command);
  } catch (error) {
    if (!String((error as Error)?.message).includes('NOSCRIPT')) throw error;
    command[0] = 'EVAL';
    command[1] = scripts[name];
    return client.sendCommand(command);
  }
}

/**
 * Runs a script by its body (`EVAL`) every time: never refused with NOSCRIPT,
 * so calls on one connection run in the order they were made (a NOSCRIPT
 * retry would run after calls made later). For scripts whose order matters
 * (publishes); the server hashes the short body at each call.
 */
export function runScriptInOrder(
  client: RedisCommandSender,
  name: ScriptName,
  keys: readonly string[],
  args: readonly string[],
): Promise<unknown> {
  const command = new Array<string>(3 + keys.length + args.length);
  command[0] = 'EVAL';
  command[1] = scripts[name];
  command[2] = String(keys.length);
  for (let i = 0; i < keys.length; i++) command[3 + i] = keys[i] as string;
  for (let i = 0; i < args.length; i++) command[3 + keys.length + i] = args[i] as string;
  return client.sendCommand(command);
}
