/** A request the strict decoder refused (see decoding.ts) is INVALID_ARGUMENT naming the field. */
import { InvalidArgumentError } from '../../errors.js';
import type { Middleware } from '../context.js';
import { DecodeFailure } from '../decoding.js';

export const rejectUndecodable: Middleware = (ctx, next) => {
  const { request } = ctx;
  if (request instanceof DecodeFailure) {
    throw new InvalidArgumentError([
      {
        field: request.field || 'request',
        description: `not a valid ${request.typeName}: ${request.reason}`,
      },
    ]);
  }
  return next();
};
