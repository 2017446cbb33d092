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
