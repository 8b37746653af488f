/**
 * A text as errors show it: quoted as JSON (spaces and control characters
 * seen), cut at 40 characters.
 *
 * @example
 * quoteText(' 1 '); // '" 1 "'
 */
export const quoteText = (text: string): string =>
  text.length > 40 ? `${JSON.stringify(text.slice(0, 40))}…` : JSON.stringify(text);
