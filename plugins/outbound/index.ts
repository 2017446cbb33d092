import { OutboundLedger, outboundNote, type OutboundSettings } from '../../lib/checks/outbound';
import { normaliseMessageId } from '../../lib/checks/backscatter/signing';
import { definePlugin } from '../shared/adapter';
import { addressOf, DENYSOFT, DSN, OK, type HarakaPlugin } from '../shared/haraka';
import { runtimeFor } from '../shared/runtime';
import { existingTransactionState } from '../shared/state';

// Relayed mail: suspended senders are deferred at MAIL FROM (the verdict plugin
// replies), each message is counted for its sender and bulk is tagged and
// routed. Inbound: ARF reports to the feedback addresses are counted and
// consumed, bounces of our mail count invalid recipients.

/** Kept in the transaction notes, which Haraka hands to outbound delivery (hmail.todo.notes). */
const ROUTE_NOTE = 'mailward_outbound';

interface RouteNote {
  sender: string;
  /** The relayed message's Message-ID: its invalid recipients count once, by bounce or by DSN. */
  messageId?: string;
  bulk: boolean;
  route?: { bindIp: string; bindHelo: string; relay: string };
}

function settingsOf(plugin: HarakaPlugin): OutboundSettings | undefined {
  const runtime = runtimeFor(plugin);
  return runtime.config.modules.find((m) => m.module.name === 'outbound')?.settings as OutboundSettings | undefined;
}

export = definePlugin('outbound', {
  hooks: {
    /** Runs after the module's own data_post: applies what the checks decided. */
    async data_post(connection) {
      const txn = connection.transaction;
      const state = existingTransactionState(txn);
      const note = state && outboundNote(state.ctx);
      if (!txn || !state || !note) return;
      if (note.sender) {
        const routeNote: RouteNote = { sender: note.sender, messageId: note.messageId, bulk: !!note.bulk, route: note.route };
        txn.notes[ROUTE_NOTE] = routeNote;
      }
      // A report that could not be counted is not consumed: alone, it is deferred (450, queue hook); with
      // other recipients it is delivered to all of them, feedback address included, and lost to no one.
      if (note.consume?.length && note.complaint?.status === 'deferred') {
        if (note.consume.length < txn.rcpt_to.length) note.consume = [];
        return;
      }
      if (note.consume?.length && note.consume.length < txn.rcpt_to.length) {
        // Mixed recipients: the report is consumed for the feedback addresses, delivered to the others.
        const consumed = new Set(note.consume.map((a) => a.toLowerCase()));
        txn.rcpt_to = txn.rcpt_to.filter((r) => !consumed.has((addressOf(r) ?? '').toLowerCase()));
        state.ctx.rcptTo = state.ctx.rcptTo.filter((r) => !consumed.has(r.toLowerCase()));
        note.consume = [];
      }
    },

    /** A report for feedback addresses only: kept by us, never delivered. Registered before the queue plugins. */
    async queue(connection) {
      const state = existingTransactionState(connection.transaction);
      const note = state && outboundNote(state.ctx);
      if (!note?.consume?.length) return;
      if (note.complaint?.status === 'deferred') {
        // Haraka answers 450 to a DENYSOFT at the queue hook whatever the DSN says; the text still carries 4.3.0.
        return { code: DENYSOFT, message: new DSN(450, `4.3.0 Feedback report not counted now, please send it again later (ref ${state!.ctx.ref})`) };
      }
      const what = note.complaint ? `${note.complaint.status}` : 'received';
      return { code: OK, message: `Feedback report ${what} (ref ${state!.ctx.ref})` };
    },

    /** Bulk goes out from its own address or through its own relay. params: [domain]; "connection" is the hmail. */
    async get_mx(hmail: any, params) {
      const note: RouteNote | undefined = hmail?.todo?.notes?.[ROUTE_NOTE];
      const route = note?.bulk ? note.route : undefined;
      if (!route) return;
      const bind = route.bindIp || undefined;
      const bindHelo = route.bindHelo || undefined;
      if (route.relay) {
        const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(route.relay)!;
        return { code: OK, message: { exchange: m[1], port: m[2] ? Number(m[2]) : 25, priority: 0, bind, bind_helo: bindHelo } as any };
      }
      const domain = String(params[0] ?? hmail.todo.domain);
      const runtime = runtimeFor(this);
      let mxs: { exchange: string; priority: number }[];
      try {
        mxs = (await runtime.services.dns.resolve(domain, 'MX')) as { exchange: string; priority: number }[];
      } catch (err) {
        // A look-up that failed (timeout, SERVFAIL) is not "no MX": delivering to the domain's own
        // address could hand the mail to a host that is no mail server. Haraka retries later.
        return { code: DENYSOFT, message: `MX look-up for ${domain} failed: ${(err as Error).message}` };
      }
      // No MX at all: the domain itself is the mail host (RFC 5321 5.1).
      const list = mxs.length ? mxs : [{ exchange: domain, priority: 0 }];
      return { code: OK, message: list.map((mx) => ({ exchange: mx.exchange, priority: mx.priority, bind, bind_helo: bindHelo })) as any };
    },

    /** Haraka's own delivery failed permanently: recipients refused as invalid (5.1.x) count against the sender. */
    async bounce(hmail: any) {
      const settings = settingsOf(this);
      const note: RouteNote | undefined = hmail?.todo?.notes?.[ROUTE_NOTE];
      if (!settings?.enabled || !settings.bounces.enabled || !note?.sender) return;
      const invalid = (hmail.todo.rcpt_to ?? []).filter((r: any) => /^5\.1\.\d+/.test(String(r.dsn_status ?? '')));
      if (!invalid.length) return;
      const runtime = runtimeFor(this);
      const ledger = new OutboundLedger(runtime.services.state, settings, runtime.services.clock, runtime.config.shared.nodeName);
      // Keyed like the DSN path (lib/checks/outbound), so the DSN that comes back through our MX is not a second count.
      const messageId = normaliseMessageId(note.messageId) || `hmail:${hmail.todo.uuid}`;
      let counted: number;
      try {
        counted = await ledger.countInvalid(note.sender, messageId, invalid.map((r: unknown) => addressOf(r) ?? ''));
      } catch (err) {
        // Redis away or refusing: these bounces go uncounted (the DSN, if it comes back through us, may still count them).
        this.logwarn(`mailward outbound: invalid recipients of ${messageId} not counted against ${note.sender}: ${(err as Error).message}`);
        return;
      }
      if (!counted) return;
      const suspension = await ledger.evaluate(note.sender);
      this.loginfo(`mailward outbound: ${counted} invalid recipient(s) counted against ${note.sender}${suspension ? `; suspended: ${suspension.reason}` : ''}`);
    },
  },
});
