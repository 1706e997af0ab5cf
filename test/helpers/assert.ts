import assert from 'node:assert/strict';
import { UserError } from '../../src/errors.ts';

/** Runs `fn`, which must throw a UserError, and returns it for further checks. */
export function userError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  assert.fail('expected a UserError');
}
