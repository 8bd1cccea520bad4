/**
 * One error class for the whole project, with stable codes (ARCHITECTURE.md
 * invariant 6). Library code throws PfsError; `nbd/` maps a code to an NBD
 * errno, `cli/` maps it to an exit status and prints `message` (plus `hint`).
 *
 * Codes never change meaning. Add new ones at the end.
 */
export const ErrorCode = {
  /** The user asked for something malformed (bad flag, bad `dir:tag`). Exit 1. */
  USAGE: "USAGE",
  /** An image object is malformed: bad framing, bad pointer, impossible value. Exit 2. */
  FORMAT: "FORMAT",
  /** A blob's bytes do not hash to its name, or a verity digest mismatches. Exit 2. */
  DIGEST: "DIGEST",
  /** A blob, manifest, tag, inode or path that should exist does not. Exit 2. */
  NOT_FOUND: "NOT_FOUND",
  /** The image is valid PuzzleFS but cannot be represented (e.g. as ext4). Exit 2. */
  UNSUPPORTED: "UNSUPPORTED",
  /** Something would be overwritten or written outside where it belongs. Exit 1. */
  EXISTS: "EXISTS",
  /** A limit was hit: traversal budget, nesting depth, size cap. Exit 2. */
  LIMIT: "LIMIT",
  /** An operating-system I/O error (EACCES, ENOSPC, ...). Exit 3. */
  IO: "IO",
  /** A network peer broke the protocol. Not an exit status; closes that peer. */
  PROTOCOL: "PROTOCOL",
  /** A bug: an invariant of our own code failed. Exit 70. */
  INTERNAL: "INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface PfsErrorOptions {
  /** One line telling the user how to fix it, printed by the CLI after the message. */
  hint?: string;
  /** Structured details for logs and tests (object name, offset, expected, got). */
  data?: Record<string, unknown>;
  cause?: unknown;
}

export class PfsError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly data: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: PfsErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "PfsError";
    this.code = code;
    this.hint = opts.hint;
    this.data = opts.data ?? {};
  }

  static usage(message: string, hint?: string): PfsError {
    return new PfsError(ErrorCode.USAGE, message, { hint });
  }

  /** `<what> @0x<off>: <problem>: expected X, got Y` (STYLE.md §10). */
  static format(what: string, problem: string, data: Record<string, unknown> = {}): PfsError {
    const at = typeof data.offset === "number" ? ` @0x${data.offset.toString(16)}` : "";
    const exp = "expected" in data ? `: expected ${String(data.expected)}, got ${String(data.got)}` : "";
    return new PfsError(ErrorCode.FORMAT, `${what}${at}: ${problem}${exp}`, { data: { what, ...data } });
  }

  static digest(what: string, expected: string, got: string): PfsError {
    return new PfsError(ErrorCode.DIGEST, `${what}: sha256 mismatch: expected ${expected}, got ${got}`, {
      data: { what, expected, got },
      hint: "the blob is corrupted on disk; restore it from the registry or rebuild the image",
    });
  }

  static notFound(what: string, hint?: string): PfsError {
    return new PfsError(ErrorCode.NOT_FOUND, `${what}: not found`, { hint, data: { what } });
  }

  static limit(what: string, limit: string): PfsError {
    return new PfsError(ErrorCode.LIMIT, `${what}: exceeds limit (${limit})`, { data: { what, limit } });
  }

  static internal(message: string): PfsError {
    return new PfsError(ErrorCode.INTERNAL, `internal error: ${message}`);
  }

  /** Wrap an operating-system error (anything with an `errno` `code`). */
  static io(what: string, err: unknown): PfsError {
    const e = err as NodeJS.ErrnoException;
    const why = e?.code ? `${e.code}${e.message ? ` (${e.message.replace(/^[A-Z]+: /, "")})` : ""}` : String(err);
    return new PfsError(ErrorCode.IO, `${what}: ${why}`, { cause: err, data: { what, errno: e?.code } });
  }
}

export function isPfsError(e: unknown, code?: ErrorCode): e is PfsError {
  return e instanceof PfsError && (code === undefined || e.code === code);
}

/** Exit statuses scripts can rely on (README "Exit status"). */
export const ExitCode = { OK: 0, USAGE: 1, IMAGE: 2, IO: 3, INTERNAL: 70 } as const;

export function exitCodeFor(e: unknown): number {
  if (!(e instanceof PfsError)) return ExitCode.INTERNAL;
  switch (e.code) {
    case ErrorCode.USAGE:
    case ErrorCode.EXISTS:
      return ExitCode.USAGE;
    case ErrorCode.FORMAT:
    case ErrorCode.DIGEST:
    case ErrorCode.NOT_FOUND:
    case ErrorCode.UNSUPPORTED:
    case ErrorCode.LIMIT:
      return ExitCode.IMAGE;
    case ErrorCode.IO:
    case ErrorCode.PROTOCOL:
      return ExitCode.IO;
    default:
      return ExitCode.INTERNAL;
  }
}
