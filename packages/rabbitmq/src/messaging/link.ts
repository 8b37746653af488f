import { TransportError } from '@factline/core';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { closeWithin, openConnection, redactUrl } from '../connection.ts';
import { declareExchanges, type Names } from '../topology.ts';
import { createPublisher, type Publisher } from './publish.ts';

/** A transport's connections to the broker, opened together and lost together. */
export interface Link {
  /** Consumes, acks and declares; never publishes, so a broker blocking publishers leaves it running. */
  connection: ChannelModel;
  /** Carries the publish channel only: RabbitMQ blocks a connection that publishes during a memory or disk alarm. */
  publishing: ChannelModel;
  channel: ConfirmChannel;
  publisher: Publisher;
}

export interface LinkSettings {
  url: string;
  connectTimeoutMs: number;
  /** The consuming connection's name; the publishing one's has ` (publish)` after it. */
  connectionName: string;
  tls: Parameters<typeof openConnection>[3];
  publishTimeoutMs: number;
  names: Names;
  /** Whether `link` is the one the transport uses now: only its failures are told. */
  inUse(link: Link): boolean;
  /** A channel error of the link in use (the lost connection is told after it, through `lost`). */
  failed(error: TransportError): void;
  /** Either connection of the link closed; the other is being closed too. */
  lost(link: Link): void;
}

/**
 * Opens a link: the consuming connection, the publishing one with its
 * confirm channel and the application's exchanges declared on it. A failure
 * on the way closes what was opened and rejects.
 *
 * @example
 * link = await openLink({ url, connectTimeoutMs, connectionName, tls, publishTimeoutMs, names, inUse, failed, lost });
 */
export async function openLink(settings: LinkSettings): Promise<Link> {
  const { url, connectTimeoutMs, connectionName, tls } = settings;
  const connection = await openConnection(url, connectTimeoutMs, connectionName, tls);
  let publishing: ChannelModel | undefined;
  try {
    publishing = await openConnection(url, connectTimeoutMs, `${connectionName} (publish)`, tls);
    const publishOn = publishing;
    const channel = await publishing.createConfirmChannel();
    // A channel error of the link in use (e.g. a publish to an exchange that is gone) closes the channel, and with
    // it the link: its reason is told here, the lost connection after it. (One while declaring rejects the open.)
    let opened: Link | undefined;
    channel.on('error', (error: Error) => {
      if (opened === undefined || !settings.inUse(opened)) return;
      settings.failed(
        new TransportError(`the publish channel to RabbitMQ at ${redactUrl(url)} failed: ${error.message}`, {
          cause: error,
        }),
      );
    });
    await declareExchanges(channel, settings.names);
    const link: Link = {
      connection,
      publishing,
      channel,
      publisher: createPublisher(channel, settings.publishTimeoutMs),
    };
    opened = link;
    // Either connection lost takes the other with it: the reconnect starts over with both.
    const lost = (other: ChannelModel) => () => {
      if (!settings.inUse(link)) return;
      void closeWithin(other);
      settings.lost(link);
    };
    connection.on('close', lost(publishOn));
    publishOn.on('close', lost(connection));
    channel.on('close', () => {
      // The publish channel alone closed (a channel error): drop its connection; the reconnect starts over.
      if (settings.inUse(link)) void closeWithin(publishOn);
    });
    return link;
  } catch (error) {
    await Promise.all([closeWithin(connection), publishing && closeWithin(publishing)]);
    throw error;
  }
}

/** Closes both connections of a link; true when the broker confirmed both within the close bound. */
export async function closeLink(link: Link): Promise<boolean> {
  const confirmed = await Promise.all([closeWithin(link.connection), closeWithin(link.publishing)]);
  return confirmed.every(Boolean);
}
