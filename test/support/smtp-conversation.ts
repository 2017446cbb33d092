import { createConnection } from 'node:net';

/** Sends `commands` one at a time over raw SMTP, each after the reply to the one before, and returns every reply line as sent (without CRLF). */
export function smtpConversation(port: number, commands: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(port, '127.0.0.1');
    const lines: string[] = [];
    let buffer = '';
    let next = 0;
    socket.on('data', (data) => {
      buffer += data.toString('latin1');
      for (let at = buffer.indexOf('\r\n'); at >= 0; at = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        lines.push(line);
        if (!/^\d{3} /.test(line)) continue;
        if (next < commands.length) socket.write(`${commands[next++]}\r\n`);
        else socket.end();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(lines));
  });
}
