/** A configuration problem, always naming the file, the section and the key. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly section: string,
    readonly key: string | null,
    problem: string,
  ) {
    super(`${file} [${section}]${key === null ? '' : ` ${key}`}: ${problem}`);
    this.name = 'ConfigError';
  }
}
