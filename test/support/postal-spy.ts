// A spy on what postal-mime is given to decode (tests of the 2 MB / line decoding limits).
import PostalMime from 'postal-mime';

/**
 * What postal-mime is given to decode while `run` runs, static PostalMime.parse
 * or a parser's own parse (the static one calls it): each input's size, and
 * the inputs (a spy: the parse itself is unchanged).
 */
export async function postalInputs<T>(run: () => Promise<T>): Promise<{ result: T; sizes: number[]; inputs: Buffer[] }> {
  const parse = PostalMime.prototype.parse;
  const inputs: Buffer[] = [];
  PostalMime.prototype.parse = function (this: PostalMime, input: Parameters<typeof parse>[0]) {
    inputs.push(Buffer.from(input as Buffer));
    return parse.call(this, input);
  };
  try {
    return { result: await run(), sizes: inputs.map((b) => b.length), inputs };
  } finally {
    PostalMime.prototype.parse = parse;
  }
}
/** The sizes of what postal-mime is given to decode while `run` runs. */
export async function postalInputSizes<T>(run: () => Promise<T>): Promise<{ result: T; sizes: number[] }> {
  const { result, sizes } = await postalInputs(run);
  return { result, sizes };
}
/** Lines of a decoder input, as postal-mime splits them (at LF; a last line without one counts). */
export function lineCount(input: Buffer): number {
  let n = 0;
  for (let i = input.indexOf(0x0a); i >= 0; i = input.indexOf(0x0a, i + 1)) n++;
  return input.length && input[input.length - 1] !== 0x0a ? n + 1 : n;
}
/** 24 MB of text lines: what postal-mime would hold the event loop for seconds to decode. */
export const PADDING_24MB = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor\r\n'.repeat(Math.ceil(24e6 / 78));
