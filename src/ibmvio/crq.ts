/**
 * CRQ link state machine of one server adapter (ibmvio.md §3, §7.1): queue registration, the
 * INIT / INIT COMPLETE handshake, transport events, and an outbox that rides out a full client
 * queue (H_DROPPED). Deliberately avoids the reset ping-pong: a partner-initiated transport event
 * or a client INIT while connected resets the session but never re-registers our queue; only a
 * protocol error from the client does (as ibmvscsis's ERR_DISCONNECT_RECONNECT).
 */
import type { Logger } from 'pino';
import { CrqInitFormat, CrqValid, H, hName, TransportEvent } from './constants.js';
import { INIT_COMPLETE_ENTRY, INIT_ENTRY } from './crq-entry.js';
import type { VioHypervisor } from './hypervisor.js';

export type CrqLinkState = 'closed' | 'wait-connection' | 'connected';

export interface CrqLinkHandlers {
  /** Handshake done: MADs and SRP may flow. */
  onConnected(): void;
  /** The session is gone (client reset, partner failed, protocol error): drop all SRP/MAD state. */
  onReset(reason: string): void;
  /** A 0x80 command entry while connected. */
  onCommand(entry: Buffer): void;
}

export interface CrqLinkOptions {
  /** How long the client's queue may stay full before the connection is dropped. */
  queueFullTimeoutMs?: number;
  /** Most responses waiting for room in the client's queue. */
  maxOutbox?: number;
  logger?: Logger;
}

export interface CrqLinkStats {
  entries: number;
  ignoredBeforeInit: number;
  clientResets: number;
  transportEvents: number;
  protocolResets: number;
  dropped: number;
}

export class CrqLink {
  private st: CrqLinkState = 'closed';
  private outbox: Buffer[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay = 1;
  private fullSince = 0;
  private drainScheduled = false;
  private readonly queueFullTimeoutMs: number;
  private readonly maxOutbox: number;
  readonly stats: CrqLinkStats = { entries: 0, ignoredBeforeInit: 0, clientResets: 0, transportEvents: 0, protocolResets: 0, dropped: 0 };

  constructor(
    private readonly hv: VioHypervisor,
    readonly unit: number,
    private readonly handlers: CrqLinkHandlers,
    private readonly opts: CrqLinkOptions = {},
  ) {
    this.queueFullTimeoutMs = opts.queueFullTimeoutMs ?? 10_000;
    this.maxOutbox = opts.maxOutbox ?? 1024;
  }

  get state(): CrqLinkState {
    return this.st;
  }

  private get log(): Logger | undefined {
    return this.opts.logger;
  }

  /** Register the queue and announce ourselves. Returns the H_REG_CRQ result. */
  open(): number {
    let rc = this.hv.registerCrq(this.unit, () => this.scheduleDrain());
    if (rc === H.RESOURCE) {
      // Left registered by a previous incarnation (service restart): free and register again.
      this.hv.freeCrq(this.unit);
      rc = this.hv.registerCrq(this.unit, () => this.scheduleDrain());
    }
    if (rc !== H.SUCCESS && rc !== H.CLOSED) {
      this.log?.error({ unit: this.unit, rc: hName(rc) }, 'VIO adapter: H_REG_CRQ failed; check the adapter configuration');
      return rc;
    }
    this.st = 'wait-connection';
    // H_CLOSED: the client is not there yet; it will send INIT when it registers.
    if (rc === H.SUCCESS) this.sendNow(INIT_ENTRY());
    this.scheduleDrain();
    return rc;
  }

  close(): void {
    if (this.st === 'closed') return;
    this.clearOutbox();
    this.st = 'closed';
    this.hv.freeCrq(this.unit);
  }

  /** The client broke the protocol: drop its session and re-register (ERR_DISCONNECT_RECONNECT). */
  reconnect(reason: string): void {
    if (this.st === 'closed') return;
    this.stats.protocolResets++;
    this.log?.warn({ unit: this.unit, reason }, 'VIO adapter: protocol error from the client partition, resetting the connection');
    this.clearOutbox();
    this.handlers.onReset(reason);
    this.hv.freeCrq(this.unit);
    this.st = 'closed';
    this.open();
  }

  /** Queue a response entry for the client; order is kept while the client queue is full. */
  send(entry: Buffer): void {
    if (this.st !== 'connected') return;
    if (this.outbox.length >= this.maxOutbox) {
      this.reconnect(`more than ${this.maxOutbox} responses waiting for the client queue`);
      return;
    }
    this.outbox.push(entry);
    if (this.outbox.length === 1) this.pump();
  }

  private sendNow(entry: Buffer): number {
    const rc = this.hv.sendCrq(this.unit, entry);
    if (rc !== H.SUCCESS) this.log?.debug({ unit: this.unit, rc: hName(rc) }, 'VIO adapter: H_SEND_CRQ did not deliver');
    return rc;
  }

  private pump(): void {
    this.retryTimer = undefined;
    while (this.outbox.length > 0 && this.st === 'connected') {
      const rc = this.hv.sendCrq(this.unit, this.outbox[0]!);
      if (rc === H.SUCCESS) {
        this.outbox.shift();
        this.fullSince = 0;
        this.retryDelay = 1;
        continue;
      }
      if (rc === H.DROPPED) {
        const now = Date.now();
        if (this.fullSince === 0) this.fullSince = now;
        if (now - this.fullSince > this.queueFullTimeoutMs) {
          this.reconnect(`client queue full for more than ${this.queueFullTimeoutMs} ms`);
          return;
        }
        this.retryTimer = setTimeout(() => this.pump(), this.retryDelay);
        this.retryDelay = Math.min(this.retryDelay * 2, 100);
        return;
      }
      if (rc === H.CLOSED) {
        // The client deregistered; its transport event will (or did) reset us. Wait for its INIT.
        this.clearOutbox();
        this.resetSession('client queue closed');
        return;
      }
      this.stats.dropped++;
      this.log?.warn({ unit: this.unit, rc: hName(rc) }, 'VIO adapter: response dropped by the hypervisor');
      this.outbox.shift();
    }
  }

  private clearOutbox(): void {
    this.outbox = [];
    this.fullSince = 0;
    this.retryDelay = 1;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private resetSession(reason: string): void {
    this.handlers.onReset(reason);
    if (this.st !== 'closed') this.st = 'wait-connection';
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  /** Process what is in the queue, in bounded batches so other adapters get their turn. */
  private drain(): void {
    for (let i = 0; i < 64; i++) {
      if (this.st === 'closed') return;
      const e = this.hv.receiveCrq(this.unit);
      if (!e) return;
      this.stats.entries++;
      this.handleEntry(e);
    }
    this.scheduleDrain();
  }

  private handleEntry(e: Buffer): void {
    const valid = e[0]!;
    const format = e[1]!;
    switch (valid) {
      case CrqValid.INIT:
        if (format === CrqInitFormat.INIT) {
          if (this.st === 'connected') {
            // The client restarted its side: a clean new session, but no re-registration.
            this.stats.clientResets++;
            this.clearOutbox();
            this.handlers.onReset('client sent INIT while connected (client reset)');
          }
          this.sendNow(INIT_COMPLETE_ENTRY());
          this.connected();
        } else if (format === CrqInitFormat.INIT_COMPLETE) {
          if (this.st === 'wait-connection') this.connected();
        } else {
          this.reconnect(`unknown initialization format 0x${format.toString(16)}`);
        }
        return;
      case CrqValid.TRANSPORT_EVENT:
        this.stats.transportEvents++;
        if (
          format === TransportEvent.PARTNER_FAILED ||
          format === TransportEvent.PARTNER_DEREGISTER ||
          format === TransportEvent.MIGRATED
        ) {
          this.log?.info({ unit: this.unit, event: format }, 'VIO adapter: client partition transport event, waiting for it to reconnect');
          this.clearOutbox();
          this.resetSession(`transport event 0x${format.toString(16)}`);
        } else {
          this.log?.warn({ unit: this.unit, event: format }, 'VIO adapter: unsupported transport event ignored');
        }
        return;
      case CrqValid.CMD_RSP:
        if (this.st !== 'connected') {
          // ibmvscsis: the client will not be expecting an answer before the handshake.
          this.stats.ignoredBeforeInit++;
          return;
        }
        this.handlers.onCommand(e);
        return;
      default:
        if (this.st === 'connected') this.reconnect(`invalid CRQ valid byte 0x${valid.toString(16)}`);
        else this.stats.ignoredBeforeInit++;
    }
  }

  private connected(): void {
    const was = this.st;
    this.st = 'connected';
    if (was !== 'connected') this.handlers.onConnected();
  }
}
