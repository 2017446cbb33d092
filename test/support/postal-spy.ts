// A spy on what postal-mime is given to decode (tests of the 2 MB decoding limit).
import PostalMime from 'postal-mime';

/** The sizes of what PostalMime.parse is given while `run` runs (a spy: the parse itself is unchanged). */
export async function postalInputSizes<T>(run: () => Promise<T>): Promise<{ result: T; sizes: number[] }> {
  const parse = PostalMime.parse;
  const sizes: number[] = [];
  PostalMime.parse = ((input: Parameters<typeof parse>[0], options?: Parameters<typeof parse>[1]) => {
    sizes.push((input as Buffer).length);
    return parse.call(PostalMime, input, options);
  }) as typeof parse;
  try {
    return { result: await run(), sizes };
  } finally {
    PostalMime.parse = parse;
  }
}
/** 24 MB of text lines: what postal-mime would hold the event loop for seconds to decode. */
export const PADDING_24MB = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor\r\n'.repeat(Math.ceil(24e6 / 78));
