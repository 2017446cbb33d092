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
