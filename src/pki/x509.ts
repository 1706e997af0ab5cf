// @peculiar/x509, loaded once with what it needs: its ASN.1 schemas are declared with decorators that read
// reflect-metadata, which must be loaded before the library. Everything that uses the library imports it
// from here, so the order cannot be got wrong and the polyfill is imported in one place.
import 'reflect-metadata';

export * as x509 from '@peculiar/x509';
