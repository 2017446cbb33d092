'use strict';
// A stand-in for delivery in the demo and the end-to-end tests: every accepted
// message is written to <HARAKA>/data/mailbox/<queue id>.eml, with the
// envelope in a header comment block first. Not for production.
const fs = require('node:fs');
const path = require('node:path');

const OK = 906;
const DENYSOFT = 903;

exports.register = function () {
  this.mailbox = path.resolve(process.env.HARAKA || process.cwd(), 'data', 'mailbox');
  fs.mkdirSync(this.mailbox, { recursive: true });
  this.register_hook('queue', 'store');
  this.register_hook('queue_outbound', 'store');
};

// @haraka/email-address 3 exposes .address as a getter; older releases as a method.
const addressOf = (a) => (typeof a.address === 'function' ? a.address() : a.address);

exports.store = function (next, connection) {
  const txn = connection.transaction;
  const envelope = `X-Envelope-From: <${addressOf(txn.mail_from)}>\r\nX-Envelope-To: ${txn.rcpt_to.map((r) => `<${addressOf(r)}>`).join(', ')}\r\n`;
  txn.message_stream.get_data((data) => {
    const file = path.join(this.mailbox, `${txn.uuid}.eml`);
    fs.writeFile(file, Buffer.concat([Buffer.from(envelope), data]), (err) => {
      if (err) return next(DENYSOFT, `cannot store message: ${err.message}`);
      this.loginfo(`stored ${file}`, connection);
      next(OK, `Message stored as ${txn.uuid}`);
    });
  });
};
