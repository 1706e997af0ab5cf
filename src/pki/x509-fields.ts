// Reading subject names and subject alternative names (x509-read.ts) into plain data.
// Shared by the CSR parser and the certificate parser, which must agree on what "the CN" and "the IP SANs"
// of a request and of the certificate issued for it are.

import { UserError } from '../errors.ts';
import type { GeneralNames, NameAttribute } from './x509-read.ts';

export { readSubjectAltNames } from './x509-read.ts';

const COMMON_NAME = 'CN';
const ORGANIZATION = 'O';

interface SubjectFields {
  /** Undefined when the name has no CN. */
  commonName: string | undefined;
  organizations: string[];
  /** Every other attribute as "TYPE=value" (e.g. "OU=ops"), so strict callers can refuse them. */
  otherAttributes: string[];
}

export type SubjectAltNames = GeneralNames;

/**
 * CN, O and the rest of a distinguished name. More than one CN is refused: Go keeps the last one and other
 * tools the first, so such a name means different things to different readers.
 */
export function readSubjectFields(name: readonly NameAttribute[], what: string, source?: string): SubjectFields {
  const fields: SubjectFields = { commonName: undefined, organizations: [], otherAttributes: [] };
  for (const { type, value } of name) addSubjectValue(fields, type, value, what, source);
  return fields;
}

function addSubjectValue(fields: SubjectFields, type: string, value: string, what: string, source?: string): void {
  if (type === COMMON_NAME) {
    if (fields.commonName !== undefined) {
      throw new UserError(`${what} has more than one subject common name`, {
        where: source,
        fix: 'use a subject with a single CN',
        code: 'NAME_AMBIGUOUS',
      });
    }
    fields.commonName = value;
  } else if (type === ORGANIZATION) {
    fields.organizations.push(value);
  } else {
    fields.otherAttributes.push(`${type}=${value}`);
  }
}
