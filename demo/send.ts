// `npm run demo:send [-- --gtube] [--to ADDRESS] [--port N]`: one message to the demo MTA.
import nodemailer from 'nodemailer';
import { GTUBE } from '../lib/checks/builtin';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const port = Number(option('port', process.env.MAILWARD_DEMO_PORT ?? '2525'));
const to = option('to', 'bob@example.com');
const gtube = args.includes('--gtube');

async function main(): Promise<void> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, name: 'client.example.net' });
  const body = gtube ? `This is the GTUBE test string:\n${GTUBE}\n` : 'Hello Bob,\n\nThe quarterly figures are attached as promised.\n\nAlice\n';
  try {
    const info = await transport.sendMail({ from: 'Alice <alice@example.net>', to, subject: gtube ? 'GTUBE test' : 'Quarterly figures', text: body });
    console.log(`accepted: ${info.response}`);
  } catch (err: any) {
    console.log(`refused: ${err.response ?? err.message}`);
  }
}

void main();
