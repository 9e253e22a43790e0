// Errors a request can end in, each with its HTTP status. A client sees `{"error": {"code", "message"}}` and the
// status, never a stack; anything that is not one of these (or an InputError) is a 500 whose message is generic.
import { EdgefitError, InputError } from '../errors.js';
import { RuntimeError } from '../runtime/index.js';

/** The request is wrong (body, JSON, tensor shape or dtype, limits): 400. */
export class RequestError extends InputError {
  readonly status: number = 400;
}

/** No such model: 404. */
export class NotFoundError extends InputError {
  readonly status: number = 404;
}

/** The model's queue is full: 429 with Retry-After. */
export class QueueFullError extends EdgefitError {
  readonly status: number = 429;
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    model: string,
  ) {
    super('queue-full', message, { value: model });
  }
}

/** The request's deadline passed before it ran: 504. */
export class DeadlineError extends EdgefitError {
  readonly status: number = 504;
}

/** Missing or wrong bearer token on an admin endpoint: 401 (missing) or 403 (wrong / admin disabled). */
export class AuthError extends EdgefitError {
  constructor(
    readonly status: 401 | 403,
    message: string,
  ) {
    super(status === 401 ? 'unauthorized' : 'forbidden', message, {});
  }
}

/** The server is shutting down or not ready: 503. */
export class UnavailableError extends EdgefitError {
  readonly status: number = 503;
}

/** HTTP status and the body a client gets for an error. Internal errors keep their message out of the body. */
export function errorResponse(e: unknown): {
  status: number;
  code: string;
  message: string;
  retryAfter?: number;
} {
  if (e instanceof QueueFullError)
    return { status: 429, code: e.code, message: e.message, retryAfter: e.retryAfterSeconds };
  if (e instanceof RequestError || e instanceof NotFoundError || e instanceof DeadlineError)
    return { status: e.status, code: e.code, message: e.message };
  if (e instanceof AuthError || e instanceof UnavailableError)
    return { status: e.status, code: e.code, message: e.message };
  if (e instanceof InputError) return { status: 400, code: e.code, message: e.message };
  // ORT's own message (one line, no stack): e.g. an index input out of range
  if (e instanceof RuntimeError) return { status: 500, code: e.code, message: e.message };
  return {
    status: 500,
    code: 'internal',
    message: 'internal error while running the model (see the server log)',
  };
}
