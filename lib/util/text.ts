/**
 * `text` without the characters of `lead` at its start and those of `trail`
 * at its end. A loop, not /^[x]+|[x]+$/: V8 tries such a regex's second
 * branch at every position of a run inside the text, so a word of 'a', 64,000
 * dots and 'a' took 3.4 s (quadratic).
 */
export function trimChars(text: string, lead: string, trail: string = lead): string {
  let start = 0;
  let end = text.length;
  while (start < end && lead.includes(text[start]!)) start++;
  while (end > start && trail.includes(text[end - 1]!)) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

/**
 * The length of the longest of `texts`, and at least `atLeast`: the width of a
 * table column. A loop, not Math.max(...lengths): a spread passes each length
 * as an argument on the stack, and `mailward trace` over ~120,000 tracking rows
 * threw RangeError (Maximum call stack size exceeded).
 */
export function longest(texts: Iterable<string>, atLeast = 0): number {
  let width = atLeast;
  for (const text of texts) if (text.length > width) width = text.length;
  return width;
}

/**
 * A copy of `text` that refers to no larger string. V8 keeps a slice of 13 or
 * more characters (substring, regex match, trim) as a view into its parent, so
 * a process-wide cache keyed by a host name taken from a message's 1 MB of
 * HTML kept that HTML alive as long as the entry: memory grew by the message's
 * size for every message with a link to a new host. Every cache that outlives
 * a message stores its keys (and what it derives from them) through this.
 */
export function detached(text: string): string {
  return structuredClone(text);
}
