// Reading subject names and subject alternative names out of @peculiar/x509 objects into plain data.
// Shared by the CSR parser and the certificate parser, which must agree on what "the CN" and "the IP SANs"
// of a request and of the certificate issued for it are.

import { x509 } from './x509.ts';
import { UserError } from '../errors.ts';
import { canonicalIp } from './san.ts';

const SUBJECT_ALT_NAME_OID = '2.5.29.17';
const COMMON_NAME = 'CN';
const ORGANIZATION = 'O';

interface SubjectFields {
  /** Undefined when the name has no CN. */
  commonName: string | undefined;
  organizations: string[];
  /** Every other attribute as "TYPE=value" (e.g. "OU=ops"), so strict callers can refuse them. */
  otherAttributes: string[];
}

export interface SubjectAltNames {
  dnsNames: string[];
  /** Canonical text (see canonicalIp); an address that has no canonical form is kept as decoded. */
  ipAddresses: string[];
  emailAddresses: string[];
  uris: string[];
  /** SANs of any other type (directory names, UPNs, ...) as "type:value". */
  otherNames: string[];
}

/**
 * CN, O and the rest of a distinguished name. More than one CN is refused: Go keeps the last one and other
 * tools the first, so such a name means different things to different readers.
 */
export function readSubjectFields(name: x509.Name, what: string, source?: string): SubjectFields {
  const fields: SubjectFields = { commonName: undefined, organizations: [], otherAttributes: [] };
  for (const attribute of name.toJSON()) {
    for (const [type, values] of Object.entries(attribute)) {
      for (const value of values) addSubjectValue(fields, type, value, what, source);
    }
  }
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

export function readSubjectAltNames(extensions: readonly x509.Extension[]): SubjectAltNames {
  const names: SubjectAltNames = { dnsNames: [], ipAddresses: [], emailAddresses: [], uris: [], otherNames: [] };
  for (const extension of extensions) {
    if (extension.type !== SUBJECT_ALT_NAME_OID) continue;
    // The extension factory hands back the typed class; decode by hand if it ever does not.
    const san =
      extension instanceof x509.SubjectAlternativeNameExtension
        ? extension
        : new x509.SubjectAlternativeNameExtension(extension.rawData);
    for (const generalName of san.names.items) addSubjectAltName(names, generalName);
  }
  return names;
}

function addSubjectAltName(names: SubjectAltNames, generalName: x509.GeneralName): void {
  const { type, value } = generalName;
  switch (type) {
    case 'dns':
      names.dnsNames.push(value);
      break;
    case 'ip':
      names.ipAddresses.push(canonicalIp(value) ?? value);
      break;
    case 'email':
      names.emailAddresses.push(value);
      break;
    case 'url':
      names.uris.push(value);
      break;
    default:
      names.otherNames.push(`${type}:${value}`);
  }
}
